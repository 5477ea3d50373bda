"""GET /p/{link_id}/return/stripe?session_id=cs_…: where Stripe Checkout sends the customer back
(adapters/payments/stripe/plugin.py describes it). Apart from the plug-in so loading the settings does
not import the Stripe SDK and aiohttp."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import cast
from urllib.parse import quote

from aiohttp import web

from adapters.payments.common import OutcomeStatus, ProviderError, ProviderUnavailable
from adapters.payments.return_pages import ReturnPages
from adapters.payments.stripe.provider import StripeProvider, event_of
from core.i18n import N_

log = logging.getLogger("paylinks.payments.stripe")

SESSION_ID = re.compile(r"cs_[A-Za-z0-9_]{1,200}")


class StripeReturnPages(ReturnPages):
    name = "stripe"
    provider: StripeProvider

    async def back_from_checkout(self, request: web.Request) -> web.StreamResponse:
        link_id = self.link_id_of(request)
        page_url = f"/p/{link_id}"
        session_id = request.query.get("session_id", "")
        if not SESSION_ID.fullmatch(session_id):
            raise web.HTTPSeeOther(page_url)  # the pay page says what the link's state is
        link = await self.links.get(link_id)
        if link is None:
            raise web.HTTPNotFound()
        # The session is asked about on the account its checkout was opened on.
        chosen = await self.provider_for(link, session_id)
        if chosen is None:
            raise web.HTTPSeeOther(page_url)
        provider = cast(StripeProvider, chosen.provider)
        test_mode = provider.test_mode
        try:
            outcome = await provider.session_outcome(session_id)
        except ProviderUnavailable as exc:
            log.warning("stripe session not retrieved link=%s session=%s request_id=%s error=%s",
                        link_id, session_id, exc.request_id, exc)
            return await self.message(request, link, N_("Processing"), N_("Checking your payment"),
                                      N_("We could not reach the payment provider just now. This page will try "
                                         "again in a moment; you were not charged twice."), test_mode=test_mode,
                                      status=503, refresh=True, back_url=page_url)
        except ProviderError as exc:  # no such session (for this account): nothing to show but the link
            log.info("stripe session refused link=%s session=%s request_id=%s error=%s",
                     link_id, session_id, exc.request_id, exc)
            raise web.HTTPSeeOther(page_url) from None
        if outcome.link_id != link_id:
            log.warning("stripe session of another link link=%s session=%s", link_id, session_id)
            raise web.HTTPSeeOther(page_url)
        if outcome.status is OutcomeStatus.PAID:
            event = event_of(outcome, event_id=f"return:{session_id}", kind="checkout.session.return")
            result, _payment = await self.links.record_payment(replace(event, account=chosen.account))
            log.info("stripe return recorded link=%s session=%s outcome=%s", link_id, session_id, result.value)
            # The pay page shows the receipt, or the refund notice when this payment could not count.
            raise web.HTTPSeeOther(f"{page_url}?payment={quote(session_id)}")
        if outcome.status is OutcomeStatus.PENDING:
            return await self.message(request, link, N_("Processing"), N_("Your payment is processing"),
                                      N_("The payment provider has not confirmed it yet. This page refreshes by "
                                         "itself and shows your receipt once it is confirmed."),
                                      test_mode=test_mode, refresh=True, back_url="")
        return await self.message(request, link, N_("Not paid"), N_("The payment was not completed"),
                                  N_("Nothing was charged. You can try again."), test_mode=test_mode,
                                  back_url=page_url)
