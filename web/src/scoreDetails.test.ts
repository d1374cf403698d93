import { describe, expect, it } from "vitest";
import { detailRows } from "./scoreDetails";

describe("score details", () => {
  it("shows scalars and word lists, with units, and leaves nested data out", () => {
    const rows = detailRows({
      failed: ["accuracy", "shape"],
      tolerance_px: 8,
      precision: 0.5555,
      shapes: [{ kind: "line" }],
      quality_features: { wobble: 0 },
      pressure: null,
      ok: true,
    });
    expect(rows).toEqual([
      ["failed checks", "accuracy, shape"],
      ["tolerance (px)", "8"],
      ["precision", "0.56"],
      ["ok", "yes"],
    ]);
  });

  it("copes with no details", () => {
    expect(detailRows(undefined)).toEqual([]);
  });
});
