// Coalesces work to the next animation frame, with a timer fallback for pages whose
// animation frames are paused (background tabs) so the canvas never falls far behind.

export class FrameScheduler {
  private raf: number | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly run: () => void,
    private readonly fallbackMs = 250,
  ) {}

  schedule(): void {
    if (this.raf !== null || this.timer !== null) return;
    this.raf = requestAnimationFrame(() => this.fire());
    this.timer = setTimeout(() => this.fire(), this.fallbackMs);
  }

  cancel(): void {
    if (this.raf !== null) cancelAnimationFrame(this.raf);
    if (this.timer !== null) clearTimeout(this.timer);
    this.raf = null;
    this.timer = null;
  }

  private fire(): void {
    this.cancel();
    this.run();
  }
}
