"""The web client in real headless Chromium: two browser contexts (A and B) in one session.

A and B sign in through the form (once per module); in each test A starts a session from the
lobby (so A is its teacher) and B opens A's share link. Pixels are read from B's
confirmed-strokes canvas, whose pixels are lesson coordinates. Screenshots of both pages go to
artifacts/browser/<test>-<A|B>.png.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    StorageState,
    expect,
    sync_playwright,
)

from tests import browser_helpers as bh
from tests.helpers import user_token
from tests.servers import GatewayProcess

# The stroke A draws in tests 1-4: a short diagonal away from the s1 guide line, and the
# pixels on B that must turn on (inner points, clear of the rounded ends).
PATH = bh.line(220, 150, 520, 230, 30)
PROBES = [PATH[i] for i in (2, 8, 15, 22, 28)]
# Well away from PATH: a second stroke for the offline test.
PATH_2 = bh.line(220, 470, 560, 420, 30)
PROBES_2 = [PATH_2[i] for i in (2, 10, 20, 28)]
LIVE_DEADLINE_S = 1.0


@pytest.fixture(scope="session")
def web_bundle() -> None:
    """Checked before the (session-scoped) servers start, so a missing bundle fails at once."""
    bh.require_bundle()


@pytest.fixture(scope="module")
def browser(web_bundle: None) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = bh.launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True)
class Account:
    user_id: str
    storage: StorageState


@pytest.fixture(scope="module")
def accounts(
    web_bundle: None, browser: Browser, gateways: list[GatewayProcess]
) -> dict[str, Account]:
    """alice (A) and bob (B), signed in once through the sign-in form; each test's browser
    contexts start with their localStorage, i.e. signed in."""
    signed_in = {}
    for name in ("alice", "bob"):
        context = bh.new_context(browser, gateways[0].url)
        try:
            user_id = bh.sign_in(context.new_page(), name)
            signed_in[name] = Account(user_id, context.storage_state())
        finally:
            context.close()
    return signed_in


@dataclass
class Pair:
    """A (teacher, created the session) and B (another user), each in its own context."""

    a: Page
    b: Page
    ctx_a: BrowserContext
    ctx_b: BrowserContext
    base_url: str
    a_user: str = ""
    b_user: str = ""
    session_id: str = ""
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return bh.describe(A=self.a, B=self.b)

    def start(self, b_role: str = "student", before_b_joins: bh.SentFrames | None = None) -> None:
        """A creates a session in the lobby; B opens its share link and picks `b_role`."""
        self.session_id = bh.create_session(self.a)
        link = self.a.get_by_test_id("share-link").input_value()
        if before_b_joins is not None:
            before_b_joins.attach(self.b)
        bh.open_share_link(self.b, link, b_role)
        # Each sees the other: both joined the same session.
        for page, other in ((self.a, self.b_user), (self.b, self.a_user)):
            item = page.get_by_test_id("participants").locator(f"[data-user-id='{other}']")
            expect(item).to_be_visible()


@pytest.fixture
def pair(
    web_bundle: None,
    browser: Browser,
    gateways: list[GatewayProcess],
    accounts: dict[str, Account],
    request: pytest.FixtureRequest,
) -> Iterator[Pair]:
    base_url = gateways[0].url
    alice, bob = accounts["alice"], accounts["bob"]
    ctx_a = bh.new_context(browser, base_url, alice.storage)
    ctx_b = bh.new_context(browser, base_url, bob.storage)
    pair = Pair(
        ctx_a.new_page(), ctx_b.new_page(), ctx_a, ctx_b, base_url, alice.user_id, bob.user_id
    )
    try:
        yield pair
    finally:
        # Shown under a failing test ("Captured browser state teardown").
        notes = "\n".join(pair.notes)
        request.node.add_report_section(
            "teardown",
            "browser state",
            f"session {pair.session_id}, A={pair.a_user}, B={pair.b_user}\n{notes}\n"
            f"{pair.describe()}",
        )
        bh.screenshot(request.node.name, A=pair.a, B=pair.b)
        ctx_a.close()
        ctx_b.close()


def draw_and_confirm(pair: Pair, path: list[bh.Point], expected_count: int) -> float:
    """A drags along `path`; the monotonic time of its mouse-up, once A saw the stroke confirmed."""
    released = bh.drag(pair.a, path)
    assert bh.wait_stroke_count(pair.a, expected_count), (
        f"A's own stroke was not confirmed (want {expected_count} strokes)\n{pair.describe()}"
    )
    return released


def assert_inked_in_time(pair: Pair, probes: list[bh.Point], released: float, what: str) -> None:
    """B shows the stroke within LIVE_DEADLINE_S of A's mouse-up (a late stroke says how late)."""
    left = max(0.0, LIVE_DEADLINE_S - (time.monotonic() - released))
    if bh.wait_inked(pair.b, probes, inked=True, timeout_s=left) is not None:
        pair.notes.append(f"{what}: on B {time.monotonic() - released:.3f} s after the mouse-up")
        return
    late = bh.wait_inked(pair.b, probes, inked=True, timeout_s=5.0)
    shown = "never (5 s more)" if late is None else f"{time.monotonic() - released:.2f} s"
    raise AssertionError(
        f"{what}: B's canvas did not show A's stroke within {LIVE_DEADLINE_S} s of the mouse-up "
        f"(shown after: {shown}); alphas at {probes}: {bh.alphas(pair.b, probes)}\n"
        f"{pair.describe()}"
    )


def test_a_stroke_drawn_in_a_shows_on_b_within_a_second(pair: Pair) -> None:
    pair.start()
    assert bh.alphas(pair.b, PROBES) == [0] * len(PROBES), (
        f"B's canvas is not blank\n{pair.describe()}"
    )

    released = draw_and_confirm(pair, PATH, 1)
    assert_inked_in_time(pair, PROBES, released, "live stroke")
    assert bh.stroke_count(pair.b) == 1, f"B counts other strokes\n{pair.describe()}"
    # A's own stroke moved from the pending layer to the confirmed one.
    assert bh.wait_inked(pair.a, PROBES, inked=True, timeout_s=5.0) is not None, (
        f"A's confirmed-strokes canvas lacks its own stroke: {bh.alphas(pair.a, PROBES)}\n"
        f"{pair.describe()}"
    )


def test_undo_in_a_clears_the_stroke_on_b(pair: Pair) -> None:
    pair.start()
    released = draw_and_confirm(pair, PATH, 1)
    assert_inked_in_time(pair, PROBES, released, "stroke before undo")

    undo = pair.a.get_by_test_id("undo")
    expect(undo).to_be_enabled()
    undo.click()
    cleared = bh.wait_inked(pair.b, PROBES, inked=False, timeout_s=5.0)
    assert cleared is not None, (
        f"B still shows the undone stroke; alphas {bh.alphas(pair.b, PROBES)}\n{pair.describe()}"
    )
    assert bh.wait_stroke_count(pair.b, 0), f"B still counts the undone stroke\n{pair.describe()}"
    assert bh.wait_stroke_count(pair.a, 0), f"A still counts its undone stroke\n{pair.describe()}"
    # The canvas repaints on the next animation frame after the state changes.
    assert bh.wait_inked(pair.a, PROBES, inked=False, timeout_s=5.0) is not None, (
        f"A still shows it: {bh.alphas(pair.a, PROBES)}\n{pair.describe()}"
    )
    expect(pair.a.get_by_test_id("redo")).to_be_enabled()


def test_b_offline_while_a_draws_shows_the_stroke_when_back(pair: Pair) -> None:
    pair.start()
    released = draw_and_confirm(pair, PATH, 1)
    assert_inked_in_time(pair, PROBES, released, "stroke before going offline")

    pair.ctx_b.set_offline(True)
    expect(pair.b.get_by_test_id("connection")).not_to_have_attribute("data-state", "open")
    draw_and_confirm(pair, PATH_2, 2)
    # B dropped its socket when the browser went offline, so it cannot have the new stroke.
    expect(pair.b.get_by_test_id("connection")).not_to_have_attribute("data-state", "open")
    assert bh.stroke_count(pair.b) == 1, f"B changed while offline\n{pair.describe()}"
    assert not any(bh.alphas(pair.b, PROBES_2) or [1]), f"B drew offline\n{pair.describe()}"

    pair.ctx_b.set_offline(False)
    expect(pair.b.get_by_test_id("connection")).to_have_attribute("data-state", "open")
    back = bh.wait_inked(pair.b, PROBES_2, inked=True, timeout_s=10.0)
    assert back is not None, (
        f"B came back online but does not show the stroke drawn meanwhile; alphas "
        f"{bh.alphas(pair.b, PROBES_2)}\n{pair.describe()}"
    )
    assert all(bh.alphas(pair.b, PROBES) or [0]), f"B lost the first stroke\n{pair.describe()}"
    assert bh.wait_stroke_count(pair.b, 2), f"B's stroke count after resume\n{pair.describe()}"


def test_a_viewers_pointer_on_the_canvas_sends_nothing(pair: Pair) -> None:
    sent = bh.SentFrames()
    pair.start(b_role="viewer", before_b_joins=sent)
    assert sent.websockets, f"no WebSocket recorded for the viewer\n{pair.describe()}"
    expect(pair.b.get_by_test_id("undo")).to_have_count(0)
    expect(pair.b.get_by_test_id("step-done")).to_have_count(0)
    seq_before = pair.a.evaluate("() => window.__inkstep.lastSeq()")
    mark = len(sent.frames)

    # Hover, click and drag across the viewer's canvas.
    for x, y in bh.to_client(pair.b, PATH[::5]):
        pair.b.mouse.move(x, y, steps=2)
    pair.b.mouse.click(*bh.to_client(pair.b, [(400, 300)])[0])
    bh.drag(pair.b, PATH)
    # Barrier: a page that regains focus checks its link with a ping; once that ping is
    # reported, every frame the pointer made before it has been reported too.
    socket = sent.websockets[-1]
    with socket.expect_event("framesent", predicate=lambda p: json.loads(p)["type"] == "ping"):
        pair.b.evaluate("() => window.dispatchEvent(new Event('focus'))")

    after = sent.frames[mark:]
    ops = [f for f in after if f.get("type") in bh.OP_TYPES or "client_op_id" in f]
    assert not ops, f"the viewer sent {sent.summary(mark)}\n{pair.describe()}"
    assert set(sent.types()) <= {"hello", "ping"}, f"viewer frames: {sent.summary()}"

    # The server applied nothing from the viewer, and A saw nothing: A now draws, and its
    # stroke is the next event after what A had before the viewer's pointer moved.
    assert bh.stroke_count(pair.a) == 0, f"A's stroke count changed\n{pair.describe()}"
    draw_and_confirm(pair, PATH, 1)
    assert bh.wait_stroke_count(pair.b, 1), f"the viewer does not see A's stroke\n{pair.describe()}"
    headers = {"Authorization": f"Bearer {user_token(pair.a_user)}"}
    replay = httpx.get(
        f"{pair.base_url}/v1/sessions/{pair.session_id}/replay", headers=headers, timeout=10
    )
    replay.raise_for_status()
    events = [json.loads(line) for line in replay.text.splitlines() if line.strip()]
    by_viewer = [e for e in events if e.get("author") == pair.b_user]
    assert not by_viewer, f"events authored by the viewer: {by_viewer}"
    first_after = next(e for e in events if e["seq"] > seq_before)
    assert first_after["type"] == "stroke_append" and first_after["author"] == pair.a_user, (
        f"an event slipped in after seq {seq_before}: {first_after}\n{pair.describe()}"
    )


def test_a_step_completed_in_a_shows_the_score_in_both(pair: Pair) -> None:
    pair.start()
    for page in (pair.a, pair.b):
        expect(page.get_by_test_id("step-title")).to_have_text("A straight line")
    # A clean drag along the s1 guide, (150, 300) → (650, 300).
    draw_and_confirm(pair, bh.line(150, 300, 650, 300, 50), 1)
    pair.a.get_by_test_id("step-done").click()

    for name, page in (("A", pair.a), ("B", pair.b)):
        score = page.get_by_test_id("score")
        try:
            expect(score).to_be_visible(timeout=60_000)
            expect(page.get_by_test_id("score-passed")).to_have_attribute(
                "data-passed", "true", timeout=5_000
            )
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}\n{pair.describe()}") from None
        accuracy = float(score.get_attribute("data-accuracy") or "nan")
        assert accuracy >= 70, f"{name} shows accuracy {accuracy}\n{pair.describe()}"
    for name, page in (("A", pair.a), ("B", pair.b)):
        try:
            expect(page.get_by_test_id("step-title")).to_have_text("A circle")
        except AssertionError as exc:
            raise AssertionError(
                f"{name} did not advance to s2: {exc}\n{pair.describe()}"
            ) from None
        assert page.evaluate("() => window.__inkstep.state().stepId") == "s2", pair.describe()
