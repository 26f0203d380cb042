"""What the router remembers between webhooks, shared by every replica when `REDIS_URL` is set.

Idempotency claims (a message is claimed before it is sent and marked delivered after), each
group's firing spell (when it was first paged, who was paged at which level), per-destination
pacing and the Slack message that follows a group. `memory` keeps it in the process (one
replica, the dry run); `redis` in Redis. Every key has a TTL. `failopen` wraps either so that a
store that fails or is slow costs a possible duplicate page, never a lost one.

May import: model.
"""
