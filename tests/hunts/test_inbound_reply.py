"""An ad owner's WhatsApp reply to a hunt's first message moves the lead on (both backends)."""

from __future__ import annotations

from storage.models import Lead, LeadEvent
from storage.models.consent import Suppression
from storage.models.hunts import REPONDU
from tests.inbound import waha
from tests.inbound.conftest import deliver
from worker.hunts.process import run_hunt


def test_a_reply_to_a_hunt_message_moves_its_lead_to_repondu_with_the_text(make_ads, make_hunt):
    # Given a hunt that contacted the owner of ad 1 on WhatsApp
    (ad_id,) = make_ads(1)
    hunt = make_hunt(daily_pacing_limit=1)
    run_hunt(hunt.id)
    # When the owner answers
    _, outcome = deliver(waha.message("33600000001@c.us", "Oui, toujours disponible"))
    # Then the lead is `repondu` and its history keeps what they wrote
    lead = Lead.get(Lead.ad == ad_id)
    assert lead.stage == REPONDU
    assert [(e.kind, e.text) for e in LeadEvent.select().where(LeadEvent.lead == lead.id)] == [
        ("reply", "Oui, toujours disponible")
    ]
    assert outcome == "lead replied"


def test_an_owner_who_writes_stop_is_suppressed_and_the_lead_does_not_move(make_ads, make_hunt):
    (ad_id,) = make_ads(1)
    hunt = make_hunt(daily_pacing_limit=1)
    run_hunt(hunt.id)
    _, outcome = deliver(waha.message("33600000001@c.us", "STOP"))
    assert outcome == "stop"
    assert Suppression.select().where(Suppression.address == "33600000001").count() == 1
    assert Lead.get(Lead.ad == ad_id).stage != REPONDU
