"""Alerts through Apprise URLs (``slack://``, ``mailto://``, ``json://host:port/path``): drift, gate regressions.

Apprise is an optional extra (``pip install "pytest-forecast-mlflow[notify]"``), imported only when a
URL is given. Delivery never raises: a failure comes back as a sentence for the caller to print,
because an alert that cannot be delivered must not cost the data it is about.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

INSTALL_HINT = 'pip install "pytest-forecast-mlflow[notify]"'


@dataclass(frozen=True)
class Delivery:
    """What sending one notification did: how many URLs took it, and a sentence per failure."""

    sent: int
    failures: tuple[str, ...]


def send(urls: Sequence[str], title: str, body: str) -> Delivery:
    """Send one notification to every URL; failures are reported, never raised."""
    if not urls:
        return Delivery(0, ())
    # apprise loads modules that import imghdr, deprecated since Python 3.11: not the user's concern
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import apprise
        except ImportError:
            return Delivery(0, (f"notifications need apprise, which is not installed: {INSTALL_HINT}",))
        # its own warnings ("A Connection error occurred ...") would reach stderr through logging's last
        # resort; a failure is reported here instead, once, in our words
        logging.getLogger("apprise").addHandler(logging.NullHandler())
        return _deliver(apprise, urls, title, body)


def _deliver(apprise, urls: Sequence[str], title: str, body: str) -> Delivery:
    failures = []
    sent = 0
    for number, url in enumerate(urls, 1):
        # Apprise URLs carry tokens anywhere (slack://T/B/C): name the URL by its scheme and position only
        shown = f"notify URL {number} ({url.partition('://')[0] or '?'}://...)"
        target = apprise.Apprise()
        if not target.add(url):
            failures.append(
                f"{shown} is not an Apprise URL it understands (see https://github.com/caronc/apprise/wiki)"
            )
            continue
        try:
            delivered = target.notify(title=title, body=body)
        except Exception as exc:  # a broken plugin or network stack: still not fatal
            failures.append(f"sending to {shown} failed: {type(exc).__name__}: {exc}")
            continue
        if delivered:
            sent += 1
        else:
            failures.append(f"sending to {shown} failed (the service refused it or did not answer)")
    return Delivery(sent, tuple(failures))
