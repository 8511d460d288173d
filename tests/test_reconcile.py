"""reconcile in-process, against the real sandbox over HTTP: retry timing through an injected
sleep, give-up through an injected clock, token renewal, outages, several destinations, and the
done-folder seam. (The command and the service are in test_e2e_reconcile.py.)"""

from __future__ import annotations

import calendar
import json
import os
import threading
import time
import uuid

import pytest
from pipeline_env import DESTINATION, PipelineEnv, message

from pipeline import app, config
from pipeline import message as message_stage
from pipeline.delivery.background import BackgroundReconcile
from pipeline.delivery.reconcile import Reconciler
from pipeline.delivery.records import delivery_summary, parse_since
from pipeline.errors import ConfigError
from pipeline.flow.retry import RetryPolicy
from pipeline.journal import Journal
from pipeline.journal.ledger import DeliveryLedger
from pipeline.runlock import RunLock
from pipeline.sources.local.view import LocalView
from pipeline.sources.view import DoneFolder
from pipeline.timefmt import iso

DAY = 24 * 3600.0
SECOND = {"ID": "0f6a2c4e-5b7d-4e8f-9a1b-2c3d4e5f6a7b", "Name": "Second EMR"}


class World:
    """A done folder filled by real SENDs to the sandbox, and reconcilers with fake time."""

    def __init__(self, tmp_path, sandbox):
        self.sandbox = sandbox
        self.env = PipelineEnv(tmp_path, sandbox.url, delivery_check={
            "organization_id": "org-1", "platform_url": f"{sandbox.url}/platform"})
        self.settings = config.load(self.env.config)
        self.client = app.make_client(self.settings)
        self.journal = Journal(self.settings.state.path)
        self.done = self.env.folder("done")
        self.now = time.time()
        self.sleeps: list[float] = []

    def sent(self, name: str, marker: str, at: float | None = None,
             destinations=(DESTINATION,)) -> list[str]:
        """SEND a message and lay it in done/ with a sidecar as finish would; its Log IDs."""
        body = message_stage.check(message(marker), destinations).body
        logs = list(self.client.send(body).logs)
        path = self.done / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(message(marker))
        at = self.now if at is None else at
        sidecar = {"status": "done", "logs": logs, "name": name, "claim_id": uuid.uuid4().hex,
                   "attempt_history": [{"kind": "send", "n": 1, "at": iso(at), "result": "accepted"}],
                   "finished_at": iso(at)}
        (self.done / f"{name}.redox.json").write_text(json.dumps(sidecar))
        return [log["ID"] for log in logs]

    def reconciler(self, journal=None, max_attempts=4, **seams) -> Reconciler:
        seams.setdefault("sleep", self.sleeps.append)
        return Reconciler(DoneFolder(LocalView({"done": str(self.done)})), DeliveryLedger(journal or self.journal),
                          app.make_platform_client(self.settings), RetryPolicy(max_attempts, 0.01, 0.05),
                          DAY, clock=lambda: self.now, rand=lambda: 1.0, **seams)

    def delivery(self, name: str) -> dict:
        return json.loads((self.done / f"{name}.redox.json").read_text()).get("delivery", {})

    def lookups(self) -> list[dict]:
        return self.sandbox.records()["log_lookups"]


@pytest.fixture
def world(tmp_path, sandbox):
    w = World(tmp_path, sandbox)
    yield w
    w.journal.close()


def test_retries_wait_as_the_retry_policy_says_and_honour_retry_after(world):
    [log_id] = world.sent("a.json", "a")
    world.sandbox.faults(platform_fail_next=[500, 429, 503], retry_after=0.03)
    result = world.reconciler().run_pass()
    assert result.exit_status == 0 and result.looked_up == 4
    # full jitter with rand 1.0: 0.01, then 0.02 raised to Retry-After's 0.03, then 0.04
    assert world.sleeps == pytest.approx([0.01, 0.03, 0.04])
    assert [r["status"] for r in world.lookups()] == [500, 429, 503, 200]
    assert world.delivery("a.json")[log_id]["status"] == "succeeded"


def test_give_up_counts_from_the_send_and_ends_the_checking(world):
    world.sandbox.faults(delivery_pending_marker=["slow"])
    sent_at = world.now
    [log_id] = world.sent("a.json", "slow", at=sent_at)
    reconciler = world.reconciler()
    world.now = sent_at + DAY - 1
    assert reconciler.run_pass().exit_status == 4
    assert world.delivery("a.json")[log_id]["gave_up"] is False
    world.now = sent_at + DAY + 1
    result = reconciler.run_pass()
    assert result.exit_status == 1 and result.counts["gave_up"] == 1
    assert [p.log_id for p in result.problems] == [log_id]
    entry = world.delivery("a.json")[log_id]
    assert (entry["status"], entry["gave_up"], entry["final"], entry["checks"]) == ("pending", True, True, 2)
    assert reconciler.run_pass().exit_status == 1
    assert len(world.lookups()) == 2


def test_an_outage_stops_the_pass_and_is_not_taken_for_a_give_up(world):
    [log_id] = world.sent("a.json", "a", at=world.now - 3 * DAY)
    world.sandbox.faults(platform_fail_next=[500] * 4)
    result = world.reconciler().run_pass()
    assert result.exit_status == 3 and "could not be reached" in result.stopped
    assert len(world.sleeps) == 3
    entry = world.delivery("a.json")[log_id]
    assert entry["gave_up"] is False and entry["final"] is False and "HTTP 500" in entry["error"]


def test_an_expired_token_is_renewed_once_and_the_look_up_repeated(world):
    world.sandbox.faults(delivery_pending_marker=["slow"])
    [log_id] = world.sent("a.json", "slow")
    reconciler = world.reconciler()
    reconciler.run_pass()
    tokens_before = len(world.sandbox.records()["token_requests"])
    world.sandbox.expire_tokens()
    world.sandbox.faults(delivery_pending_marker=[])
    assert reconciler.run_pass().exit_status == 0
    assert [r["status"] for r in world.lookups()] == [200, 401, 200]
    assert len(world.sandbox.records()["token_requests"]) == tokens_before + 1


def test_a_403_from_the_platform_api_stops_the_pass_as_refused_credentials(world):
    world.sent("a.json", "a")
    world.sandbox.faults(platform_fail_next=[403])
    result = world.reconciler().run_pass()
    assert result.exit_status == 3 and "403" in result.stopped and world.sleeps == []


def test_each_destination_has_its_own_delivery(world):
    ids = world.sent("a.json", "a", destinations=(DESTINATION, SECOND))
    world.sandbox.faults(delivery_overrides={ids[1]: "failed"})
    result = world.reconciler().run_pass()
    assert result.exit_status == 1 and result.counts == {
        "delivered": 1, "filtered": 0, "failed": 1, "gave_up": 0, "pending": 0}
    assert [world.delivery("a.json")[i]["status"] for i in ids] == ["succeeded", "failed"]


def test_a_log_id_redox_does_not_know_stays_pending_with_the_reason_until_given_up(world):
    world.sent("a.json", "a")
    car = json.loads((world.done / "a.json.redox.json").read_text())
    car["logs"] = [{"ID": "00000000-0000-4000-8000-000000000000", "AttemptID": "x"}]
    (world.done / "a.json.redox.json").write_text(json.dumps(car))
    reconciler = world.reconciler()
    assert reconciler.run_pass().exit_status == 4
    entry = world.delivery("a.json")["00000000-0000-4000-8000-000000000000"]
    assert entry["status"] == "pending" and "not found in Redox's logs" in entry["error"]
    world.now += DAY
    assert reconciler.run_pass().exit_status == 1
    assert world.delivery("a.json")["00000000-0000-4000-8000-000000000000"]["gave_up"] is True


def test_final_entries_in_a_sidecar_are_taken_over_by_a_fresh_journal(world, tmp_path):
    world.sent("a.json", "a")
    world.reconciler().run_pass()
    fresh = Journal(str(tmp_path / "other.db"))
    try:
        result = world.reconciler(journal=fresh).run_pass()
        assert result.exit_status == 0 and result.counts["delivered"] == 1 and result.looked_up == 0
    finally:
        fresh.close()
    assert len(world.lookups()) == 1


def test_since_leaves_out_files_sent_before_it(world):
    world.sent("old.json", "old", at=world.now - 10 * DAY)
    [new] = world.sent("new.json", "new")
    result = world.reconciler().run_pass(since=world.now - DAY)
    assert result.files == 1 and [r["log_id"] for r in world.lookups()] == [new]
    assert world.delivery("old.json") == {}


def test_settled_files_are_not_read_again(world):
    world.sent("a.json", "a")
    reconciler = world.reconciler()
    reconciler.run_pass()
    (world.done / "a.json.redox.json").write_text("not json any more")
    result = reconciler.run_pass()
    assert result.exit_status == 0 and result.counts["delivered"] == 1 and result.looked_up == 0


def test_an_unreadable_sidecar_is_skipped(world):
    world.sent("a.json", "a")
    (world.done / "broken.json").write_bytes(b"{}")
    (world.done / "broken.json.redox.json").write_text("{not json")
    result = world.reconciler().run_pass()
    assert result.exit_status == 0 and result.files == 1


def test_delivery_summary_counts_per_log_id_and_filters_by_send_time(world):
    world.sandbox.faults(delivery_fail_marker=["bad"])
    world.sent("bad.json", "bad", at=world.now - 5 * DAY)
    world.sent("good.json", "good")
    world.reconciler().run_pass()
    summary = delivery_summary(world.journal)
    assert (summary["delivered"], summary["failed"], summary["unchecked"]) == (1, 1, 0)
    assert [(p["file"], p["status"], p["gave_up"]) for p in summary["problems"]] == [
        ("bad.json", "failed", False)]
    recent = delivery_summary(world.journal, since=iso(world.now - DAY))
    assert (recent["delivered"], recent["failed"], recent["problems"]) == (1, 0, [])


def test_delivery_summary_of_settings_without_a_journal_is_all_zero(tmp_path, sandbox):
    env = PipelineEnv(tmp_path, sandbox.url)
    summary = delivery_summary(config.load(env.config))
    assert summary == {"delivered": 0, "filtered": 0, "failed": 0, "gave_up": 0, "pending": 0,
                       "unchecked": 0, "problems": []}
    assert not (tmp_path / "drop" / "state.db").exists()


def test_the_background_thread_stops_promptly_even_in_a_long_backoff(world):
    world.sent("a.json", "a")
    world.sandbox.faults(platform_fail_next=[500, 500])
    stop = threading.Event()
    reconciler = world.reconciler(sleep=stop.wait, should_stop=stop.is_set)
    reconciler.policy = RetryPolicy(4, 3600.0, 3600.0)       # an hour between tries
    background = BackgroundReconcile(reconciler, 3600.0, world.settings.state.path + ".lock", stop)
    background.start()
    world.env.wait_for(lambda: len(world.lookups()) >= 1)
    assert background.stop(timeout=10)
    assert background.passes == 1 and len(world.lookups()) == 1


def test_a_background_pass_is_skipped_while_another_pass_holds_the_lock(world):
    world.sent("a.json", "a")
    lock_path = world.settings.state.path + ".reconcile.lock"
    background = BackgroundReconcile(world.reconciler(), 60.0, lock_path, threading.Event())
    with RunLock(lock_path):
        background.one_pass()
    assert background.passes == 0 and world.lookups() == []
    background.one_pass()
    assert background.passes == 1 and len(world.lookups()) == 1


def test_the_done_folder_lists_finished_files_with_sidecars_only(tmp_path):
    root = tmp_path / "done"
    (root / "2026-01-02").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ("a.json", "2026-01-02/b.json", ".hidden/c.json", "nosidecar.json"):
        (root / rel).write_bytes(b"{}")
    for rel in ("a.json", "2026-01-02/b.json", ".hidden/c.json", "finishing.json"):
        (root / f"{rel}.redox.json").write_text('{"logs": []}')
    (root / "elsewhere.json").write_text('{"secret": 1}')
    os.symlink(root / "elsewhere.json", root / "link.json.redox.json")
    (root / "link.json").write_bytes(b"{}")
    folder = DoneFolder(LocalView({"done": str(root)}))
    assert sorted(folder.refs()) == ["2026-01-02/b.json", "a.json", "link.json"]
    assert folder.read_sidecar("link.json") is None                # never through a symlink
    assert folder.read_sidecar("2026-01-02/b.json") == {"logs": []}
    assert folder.write_sidecar("a.json", b'{"x": 1}\n')
    assert json.loads((root / "a.json.redox.json").read_text()) == {"x": 1}
    (root / "a.json").unlink()
    assert folder.write_sidecar("a.json", b"{}") is False           # its file has gone
    assert json.loads((root / "a.json.redox.json").read_text()) == {"x": 1}


@pytest.mark.parametrize("text, expected", [
    ("2026-03-04T05:06:07Z", 1772600767.0),
    ("2026-03-04T05:06:07+01:00", 1772597167.0),
    (1772600767, 1772600767.0),
])
def test_since_accepts_iso_dates_and_epoch_seconds(text, expected):
    assert parse_since(text) == expected


def test_since_refuses_what_is_not_a_date():
    with pytest.raises(ValueError, match="expected a date"):
        parse_since("yesterday")
    # dates are UTC, like every timestamp in the sidecars; ages count back from now
    assert parse_since("2026-03-04") == calendar.timegm((2026, 3, 4, 0, 0, 0))
    assert abs(parse_since("2h") - (time.time() - 7200)) < 5


def test_config_names_what_delivery_confirmation_lacks(tmp_path):
    env = PipelineEnv(tmp_path, "http://127.0.0.1:9", delivery_check={
        "platform_url": "ftp://nowhere", "auth": {"method": "legacy", "api_key": "k", "secret": "s"}})
    with pytest.raises(ConfigError) as raised:
        config.load(env.config)
    assert set(raised.value.problems) >= {
        "delivery_check.auth.method: must be oauth (the Platform API accepts only OAuth API keys)",
        "delivery_check.platform_url: not an http(s) URL"}
    env.config_data["delivery_check"] = {"organization_id": "org-1"}
    env.write_config()
    settings = config.load(env.config)          # not enabled: reconcile checks it when run
    assert config.delivery_problems(settings, required=True) == []
    assert settings.platform_token_url == "http://127.0.0.1:9/v2/auth/token"
    env.config_data["delivery_check"] = {"enabled": True}
    env.write_config()
    with pytest.raises(ConfigError, match="organization_id: missing"):
        config.load(env.config)
