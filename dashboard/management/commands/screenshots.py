from __future__ import annotations

import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dashboard import browser
from marketdata.models import Instrument


class Command(BaseCommand):
    help = (
        "Take a screenshot of each dashboard page, at desktop and phone width, as a "
        "superuser sees it, into --out (what `make screenshots` runs after seeding the demo "
        "data). Serves the site on a loopback port and drives Debian's headless Chromium."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
        parser.add_argument("--symbol", default="SPY", help="the instrument page's symbol")
        parser.add_argument("--user", default="admin", help="a superuser to look as")

    def handle(self, *args, out: Path, symbol: str, user: str, **options):
        viewer = get_user_model().objects.filter(username=user, is_superuser=True).first()
        if viewer is None:
            raise CommandError(f"no superuser named {user!r}: run prepare_site first")
        if not Instrument.objects.filter(symbol=symbol).exists():
            raise CommandError(f"no instrument {symbol!r}: run seed_demo first")
        out.mkdir(parents=True, exist_ok=True)
        # Playwright's sync API runs an event loop in this thread; Django refuses database
        # calls beside one unless told that this thread is synchronous code.
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with browser.serve() as url, browser.chromium() as chromium:
            for width, viewport, suffix in (
                ("desktop", browser.DESKTOP, ""),
                ("phone", browser.PHONE, "-phone"),
            ):
                with browser.session(chromium, url, viewer, viewport) as context:
                    for page in browser.pages(symbol):
                        tab = browser.open_page(context, page.path)
                        target = out / f"{page.name}{suffix}.png"
                        tab.screenshot(path=str(target), full_page=True)
                        tab.close()
                        self.stdout.write(f"{target} ({width})")
