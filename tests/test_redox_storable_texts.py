"""Error texts from any Redox API end up in the journal and the sidecar: whatever a reply's JSON
escapes spell (a lone surrogate, "\\ud800", is valid JSON and no UTF-8 can hold it), what is
kept can be stored. A Platform API error text of that kind used to crash `reconcile` with a
UnicodeEncodeError from SQLite."""

from __future__ import annotations

import pytest
from fakes import FakeTokens
from raw_http import RawServer, answer

from pipeline.errors import PermanentDelivery, TransientDelivery
from pipeline.redox.client import RedoxClient, Transport
from pipeline.redox.platform import PlatformClient
from pipeline.redox.ratelimit import RateLimiter

LONE = "Jane \ud800 Doe"



@pytest.fixture
def server():
    srv = RawServer()
    yield srv
    srv.close()


def storable(texts: list[str]) -> bool:
    return all(text.encode("utf-8") is not None for text in texts)


@pytest.mark.parametrize("status, error", [(400, PermanentDelivery), (503, TransientDelivery)])
def test_a_platform_error_text_with_a_lone_surrogate_is_kept_storable(server, status, error):
    server.default = answer(status, {"errors": [{"message": LONE}]})
    client = PlatformClient(server.url + "/platform", "org", Transport(2, 2), FakeTokens(),
                            RateLimiter(0))
    with pytest.raises(error) as caught:
        client.log_status("3f2b8c2e-1111-4222-8333-444455556666")
    assert storable(caught.value.errors)
    assert any("Jane" in text and "Doe" in text for text in caught.value.errors)


def test_a_send_error_text_with_a_lone_surrogate_is_kept_storable(server):
    server.default = answer(400, {"Meta": {"Errors": [{"Text": LONE}]}})
    client = RedoxClient(server.url, server.url + "/upload", Transport(2, 2), FakeTokens(),
                         RateLimiter(0))
    with pytest.raises(PermanentDelivery) as caught:
        client.send(b'{"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient"}}')
    assert storable(caught.value.errors)
