"""Driving the web client in headless Chromium (Playwright's sync API) for tests/test_browser.py."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    StorageState,
    ViewportSize,
    WebSocket,
    expect,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
WEB_DIST = REPO_ROOT / "web" / "dist"
ARTIFACTS = REPO_ROOT / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
LESSON = "circles-101"

# Client → server frames that change (or ask to change) a session, plus presence: a viewer
# sends none of them.
OP_TYPES = frozenset(
    {"stroke_append", "undo", "redo", "layer_set", "step_complete", "step_change", "presence"}
)

Point = tuple[float, float]


def require_bundle() -> None:
    """Fail (not skip) when the built client is missing: the gateway would serve nothing."""
    index = WEB_DIST / "index.html"
    if not index.is_file() or not (WEB_DIST / "assets").is_dir():
        raise AssertionError(
            f"the web client is not built ({index} is missing): run `make web` "
            "(or `cd web && npm ci && npm run build`) before the browser tests"
        )


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; Playwright never downloads a browser here."""
    if not Path(CHROMIUM).is_file():
        raise AssertionError(f"{CHROMIUM} is missing: install Debian's `chromium` package")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def new_context(
    browser: Browser, base_url: str, storage_state: StorageState | None = None
) -> BrowserContext:
    """A fresh profile (optionally with a signed-in user's localStorage)."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, storage_state=storage_state)
    context.set_default_timeout(15_000)
    return context


# ---- reading the page ---------------------------------------------------------------------


def state(page: Page) -> dict[str, Any]:
    """`window.__inkstep.state()` plus what the page shows, for assertion messages."""
    try:
        raw: dict[str, Any] = page.evaluate(
            """() => ({
                url: location.pathname + location.search,
                inkstep: window.__inkstep ? window.__inkstep.state() : null,
                connection:
                    document.querySelector('[data-testid=connection]')?.dataset.state ?? null,
                notice: document.querySelector('.notice, [role=alert]')?.textContent ?? null,
            })"""
        )
    except Exception as exc:  # the page may be gone or navigating
        return {"error": f"cannot read the page state: {exc}"}
    return raw


def describe(**pages: Page) -> str:
    """One line per page: its state, as JSON."""
    return "\n".join(
        f"{name}: {json.dumps(state(page), default=str)}" for name, page in pages.items()
    )


def stroke_count(page: Page) -> int:
    count: int = page.evaluate("() => window.__inkstep ? window.__inkstep.strokeCount() : -1")
    return count


_ALPHA_JS = """
([points, radius]) => {
  const canvas = document.querySelector('[data-testid=canvas-strokes]');
  if (!canvas) return null;
  const ctx = canvas.getContext('2d');
  return points.map(([x, y]) => {
    const x0 = Math.max(0, Math.round(x) - radius), y0 = Math.max(0, Math.round(y) - radius);
    const w = Math.min(canvas.width - x0, 2 * radius + 1);
    const h = Math.min(canvas.height - y0, 2 * radius + 1);
    const data = ctx.getImageData(x0, y0, w, h).data;
    let alpha = 0;
    for (let i = 3; i < data.length; i += 4) alpha = Math.max(alpha, data[i]);
    return alpha;
  });
}
"""

_INKED_JS = f"""
([points, radius, want]) => {{
  const alphas = ({_ALPHA_JS})([points, radius]);
  if (!alphas) return false;
  return want ? alphas.every((a) => a > 0) : alphas.every((a) => a === 0);
}}
"""

PIXEL_RADIUS = 2


def alphas(page: Page, points: Sequence[Point]) -> list[int] | None:
    """The highest alpha near each point on the confirmed-strokes canvas (lesson pixels)."""
    values: list[int] | None = page.evaluate(_ALPHA_JS, [list(points), PIXEL_RADIUS])
    return values


def wait_inked(page: Page, points: Sequence[Point], inked: bool, timeout_s: float) -> float | None:
    """Poll until every point is inked (or all are clear); seconds waited, None on timeout."""
    start = time.monotonic()
    arg = [list(points), PIXEL_RADIUS, inked]
    if timeout_s <= 0:  # Playwright reads a zero timeout as "no timeout": look once
        return 0.0 if page.evaluate(_INKED_JS, arg) else None
    try:
        page.wait_for_function(_INKED_JS, arg=arg, polling=20, timeout=timeout_s * 1000)
    except Exception as exc:
        if "Timeout" not in type(exc).__name__ and "Timeout" not in str(exc):
            raise
        return None
    return time.monotonic() - start


def wait_js(page: Page, expression: str, timeout_s: float, arg: Any = None) -> bool:
    """Poll a JS predicate; False on timeout (the caller asserts with a message)."""
    try:
        timeout_ms = max(1.0, timeout_s * 1000)  # 0 would mean "no timeout"
        page.wait_for_function(expression, arg=arg, polling=50, timeout=timeout_ms)
    except Exception as exc:
        if "Timeout" not in type(exc).__name__ and "Timeout" not in str(exc):
            raise
        return False
    return True


def wait_stroke_count(page: Page, count: int, timeout_s: float = 10.0) -> bool:
    return wait_js(
        page, "(n) => window.__inkstep && window.__inkstep.strokeCount() === n", timeout_s, count
    )


# ---- acting on the page ---------------------------------------------------------------------


def sign_in(page: Page, name: str) -> str:
    """Local sign-in through the form; returns the user id the server gave (`<name>-<6 hex>`)."""
    page.goto("/")
    page.get_by_test_id("signin-name").fill(name)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id(f"lesson-{LESSON}")).to_be_visible()
    user_id: str = page.evaluate("() => JSON.parse(localStorage.getItem('inkstep.user')).userId")
    assert re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{6}}", user_id), user_id
    return user_id


def create_session(page: Page) -> str:
    """Start a session of the lesson from the lobby (this browser joins as its teacher)."""
    page.goto("/")
    page.get_by_test_id(f"create-session-{LESSON}").click()
    wait_live(page, "teacher")
    link = page.get_by_test_id("share-link").input_value()
    match = re.search(r"/s/([^/?#]+)$", link)
    assert match, f"share link {link!r} does not name a session"
    return match.group(1)


def open_share_link(page: Page, link: str, role: str) -> None:
    """Open a share link and pick a role with the role buttons."""
    page.goto(link)
    page.get_by_test_id(f"join-{role}").click()
    wait_live(page, role)


def join(page: Page, session_id: str, role: str) -> None:
    """Join through `/s/<id>?role=…`."""
    page.goto(f"/s/{session_id}?role={role}")
    wait_live(page, role)


def wait_live(page: Page, role: str, timeout_s: float = 20.0) -> None:
    """Connected, welcomed with the role, snapshot applied."""
    ok = wait_js(
        page,
        """(role) => {
            const s = window.__inkstep && window.__inkstep.state();
            return !!s && s.connection === 'open' && s.role === role && s.stepId !== null;
        }""",
        timeout_s,
        role,
    )
    assert ok, f"the page did not go live as {role} within {timeout_s} s\n{describe(page=page)}"
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "open")


def to_client(page: Page, points: Iterable[Point]) -> list[Point]:
    """Lesson pixels → viewport coordinates of the (CSS-scaled) input canvas."""
    box = page.get_by_test_id("canvas").bounding_box()
    assert box is not None, "the input canvas is not laid out"
    size: list[int] = page.evaluate(
        "() => { const c = document.querySelector('[data-testid=canvas]');"
        " return [c.width, c.height]; }"
    )
    sx, sy = box["width"] / size[0], box["height"] / size[1]
    return [(box["x"] + x * sx, box["y"] + y * sy) for x, y in points]


def drag(page: Page, path: Sequence[Point], steps_per_segment: int = 1) -> float:
    """A mouse drag through `path` (lesson pixels), down at the first point and up at the last;
    returns `time.monotonic()` just before the mouse-up."""
    client = to_client(page, path)
    page.mouse.move(*client[0])
    page.mouse.down()
    for x, y in client[1:]:
        page.mouse.move(x, y, steps=steps_per_segment)
    released = time.monotonic()
    page.mouse.up()
    return released


def line(x0: float, y0: float, x1: float, y1: float, n: int) -> list[Point]:
    """n+1 evenly spaced points from (x0, y0) to (x1, y1)."""
    return [
        (round(x0 + (x1 - x0) * i / n, 1), round(y0 + (y1 - y0) * i / n, 1)) for i in range(n + 1)
    ]


def screenshot(test_name: str, **pages: Page) -> None:
    """artifacts/browser/<test name>-<page name>.png; never fails the test itself."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    for name, page in pages.items():
        try:
            page.screenshot(path=str(ARTIFACTS / f"{safe}-{name}.png"), full_page=True)
        except Exception:  # a crashed or closed page: the assertion says more
            pass


# ---- recording WebSocket frames --------------------------------------------------------------


@dataclass
class SentFrames:
    """Every frame a page sends on any of its WebSockets, parsed, in order."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    websockets: list[WebSocket] = field(default_factory=list)

    def attach(self, page: Page) -> SentFrames:
        page.on("websocket", self._on_socket)
        return self

    def _on_socket(self, ws: WebSocket) -> None:
        self.websockets.append(ws)
        ws.on("framesent", self._on_frame)

    def _on_frame(self, payload: str | bytes) -> None:
        try:
            frame = json.loads(payload)
        except ValueError:
            frame = {"type": "<not json>", "raw": repr(payload)[:200]}
        self.frames.append(frame if isinstance(frame, dict) else {"type": "<not an object>"})

    def types(self, since: int = 0) -> list[str]:
        return [str(f.get("type")) for f in self.frames[since:]]

    def summary(self, since: int = 0) -> str:
        """Frames without tokens, short enough for an assertion message."""
        shown = [
            {k: ("…" if k == "token" else v) for k, v in f.items() if k != "payload"}
            for f in self.frames[since:]
        ]
        return json.dumps(shown)[:2000]
