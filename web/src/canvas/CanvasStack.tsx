// The layered canvas: reference (toggle), confirmed strokes, pending strokes, cursors on top
// (the top canvas receives input). All share the lesson's pixel size and are scaled by CSS.

import { useEffect, useRef } from "react";
import type { Shape } from "../protocol";
import type { SessionModel, Change } from "../sessionModel";
import { CursorLayer } from "./cursorLayer";
import { PendingLayer } from "./pendingLayer";
import { attachPointerInput, type PointerSink } from "./pointerInput";
import { drawReference } from "./referenceLayer";
import { StrokeLayer } from "./strokeLayer";

export interface CanvasStackProps {
  width: number;
  height: number;
  model: SessionModel;
  /** Model changes to draw; returns the unsubscribe function. */
  subscribe(listener: (changes: readonly Change[]) => void): () => void;
  reference: readonly Shape[];
  showReference: boolean;
  /** Input sink; absent or not allowed to draw → the pointer sends nothing. */
  input?: PointerSink;
  canDraw?: boolean;
  /** Bumped by the owner to force a full redraw (a replaced model). */
  resetKey?: number;
}

export function CanvasStack(props: CanvasStackProps) {
  const { width, height, model, subscribe, reference, showReference, input, canDraw, resetKey } = props;
  const refCanvas = useRef<HTMLCanvasElement>(null);
  const strokesCanvas = useRef<HTMLCanvasElement>(null);
  const pendingCanvas = useRef<HTMLCanvasElement>(null);
  const topCanvas = useRef<HTMLCanvasElement>(null);
  const canDrawRef = useRef(Boolean(canDraw && input));
  canDrawRef.current = Boolean(canDraw && input);

  useEffect(() => {
    const strokes = new StrokeLayer(strokesCanvas.current!.getContext("2d")!, model);
    const pending = new PendingLayer(pendingCanvas.current!.getContext("2d")!, model);
    const cursors = new CursorLayer(topCanvas.current!.getContext("2d")!, model);
    const unsubscribe = subscribe((changes) => {
      strokes.onChanges(changes);
      pending.onChanges(changes);
      cursors.onChanges(changes);
    });
    return () => {
      unsubscribe();
      strokes.dispose();
      pending.dispose();
      cursors.dispose();
    };
  }, [model, subscribe, width, height, resetKey]);

  useEffect(() => {
    const ctx = refCanvas.current!.getContext("2d")!;
    if (showReference) drawReference(ctx, reference);
    else ctx.clearRect(0, 0, width, height);
  }, [reference, showReference, width, height]);

  useEffect(() => {
    if (!input) return;
    return attachPointerInput(topCanvas.current!, { width, height }, input, () => canDrawRef.current);
  }, [input, width, height]);

  const layer = { position: "absolute", inset: 0, width: "100%", height: "100%" } as const;
  return (
    <div
      className="canvas-stack"
      style={{ position: "relative", aspectRatio: `${width} / ${height}`, width: `min(100%, calc((100vh - 140px) * ${width / height}))` }}
    >
      <canvas ref={refCanvas} width={width} height={height} style={layer} data-testid="canvas-reference" />
      <canvas ref={strokesCanvas} width={width} height={height} style={layer} data-testid="canvas-strokes" />
      <canvas ref={pendingCanvas} width={width} height={height} style={layer} data-testid="canvas-pending" />
      <canvas
        ref={topCanvas}
        width={width}
        height={height}
        style={{ ...layer, touchAction: "none", cursor: canDraw ? "crosshair" : "default" }}
        data-testid="canvas"
      />
    </div>
  );
}
