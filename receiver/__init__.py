"""oncall-router: Alertmanager and Sentry webhooks in, pages out."""

__version__ = "0.1.0"
