"""The links a message offers: every annotation that is a URL (runbook, dashboard, any `*_url`),
the alerts' own links (graph, Sentry), and Alertmanager's view and silence pages for the group.

Every URL here has passed escape.web_url (well-formed http(s), no user info, %-encoded): label and
annotation values are written by strangers, and a link must not carry words into a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from receiver.messages import escape
from receiver.model import Alert, AlertGroup, Link, Source

# Annotation keys first in this order, then the rest by key: what a responder opens first.
_FIRST = ("runbook_url", "runbook", "dashboard_url", "dashboard", "grafana_url")
_TITLE_SUFFIX = re.compile(r"[_\-\s]*(url|link|uri)$", re.I)
_TITLE_LIMIT = 40
# Link titles the alerts' own links carry (sources.alertmanager, sources.sentry).
SOURCE, RUNBOOK = "Source", "Runbook"
# A Slack context holds 3000 characters: a longer URL could not be shown whole.
URL_LIMIT = 2900
# Beyond this a message is a link farm; the alerts in Alertmanager have the rest.
LINK_LIMIT = 10
VIEW_TITLE, SILENCE_TITLE = "View in Alertmanager", "Silence this group"
SENTRY_LABEL = ("source", "sentry")


def annotation_title(key: str) -> str:
    """`runbook_url` -> "Runbook", `grafana_dashboard_url` -> "Grafana dashboard"."""
    words = _TITLE_SUFFIX.sub("", key).replace("_", " ").replace("-", " ").split()
    title = " ".join(words) or key
    return title[:1].upper() + title[1:_TITLE_LIMIT]


def url_annotations(annotations: Mapping[str, str]) -> list[Link]:
    """Each annotation whose whole value is a well-formed web URL, as a titled safe link."""
    found = []
    for key in sorted(annotations, key=lambda k: (k not in _FIRST, _rank(k), k)):
        url = escape.web_url(annotations[key].strip())
        if url is not None and len(url) <= URL_LIMIT:
            found.append(Link(annotation_title(key), url))
    return found


def _rank(key: str) -> int:
    return _FIRST.index(key) if key in _FIRST else len(_FIRST)


def is_sentry(alert: Alert) -> bool:
    """A Sentry event, delivered directly or back through Alertmanager (labels survive)."""
    return alert.source is Source.SENTRY or alert.labels.get(SENTRY_LABEL[0]) == SENTRY_LABEL[1]


def alert_links(alert: Alert) -> list[Link]:
    """An alert's URL annotations, then its own links; a forwarded Sentry event's generator URL
    is its Sentry page, so it is named so."""
    out = url_annotations(alert.annotations)
    for link in alert.links:
        url = escape.web_url(link.url)
        if url is None or len(url) > URL_LIMIT or any(url == k.url for k in out):
            continue  # the runbook link repeats the `runbook_url` annotation
        title = link.title
        if title == SOURCE and is_sentry(alert):
            metric = alert.labels.get("sentry_resource") == "metric_alert"
            title = "Sentry alert" if metric else "Sentry issue"
        out.append(Link(title, url))
    return out


def group_links(alerts: Iterable[Alert]) -> tuple[Link, ...]:
    """One link per title and per URL over the alerts, the first alert's first."""
    titles: set[str] = set()
    urls: set[str] = set()
    out: list[Link] = []
    # A storm's alerts mostly share their annotations and links: an alert whose links come from
    # what an earlier one had adds nothing. Rendering the 5,000-alert group of `python -m bench`
    # took 72 ms without this, 28 ms with it (median of 6, in the process).
    seen: set[tuple[object, ...]] = set()
    for alert in alerts:
        source = (
            tuple(alert.annotations.items()),
            alert.links,
            alert.source,
            alert.labels.get(SENTRY_LABEL[0]),
            alert.labels.get("sentry_resource"),
        )
        if source in seen:
            continue
        seen.add(source)
        for link in alert_links(alert):
            if link.title in titles or link.url in urls:
                continue
            titles.add(link.title)
            urls.add(link.url)
            out.append(link)
            if len(out) == LINK_LIMIT:
                return tuple(out)
    return tuple(out)


def _matchers(group: AlertGroup) -> str:
    """The group as Alertmanager matchers, `{alertname="X",service="y"}`, values escaped as
    Alertmanager reads them (a `"` in a value must not end the matcher)."""
    labels = group.group_labels or group.common_labels
    pairs = []
    for key, value in sorted(labels.items()):
        quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        pairs.append(f'{key}="{quoted}"')
    return "{" + ",".join(pairs) + "}"


def _alertmanager(group: AlertGroup, fallback: str | None) -> str:
    base = group.external_url or fallback or ""
    labels = group.group_labels or group.common_labels
    if not base or not labels or group.source is not Source.ALERTMANAGER:
        return ""
    return base.rstrip("/")


def view_url(group: AlertGroup, fallback: str | None = None) -> str:
    """Alertmanager's alert list filtered to the group ("" without Alertmanager's URL)."""
    base = _alertmanager(group, fallback)
    return _checked(f"{base}/#/alerts?filter={quote(_matchers(group))}") if base else ""


def silence_url(group: AlertGroup, fallback: str | None = None) -> str:
    """Alertmanager's new-silence form, pre-filled with the group's labels ("" without one)."""
    base = _alertmanager(group, fallback)
    return _checked(f"{base}/#/silences/new?filter={quote(_matchers(group))}") if base else ""


def _checked(url: str) -> str:
    safe = escape.web_url(url)
    return safe if safe is not None and len(safe) <= URL_LIMIT else ""
