// A score's `details` as short label/value rows: scalars and lists of words; nested data is left out.

export function detailRows(details: Record<string, unknown> | null | undefined): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(details ?? {})) {
    const text = formatValue(value);
    if (text !== null) rows.push([labelFor(key), text]);
  }
  return rows;
}

function labelFor(key: string): string {
  const unit = /_(px|deg|ms|s)$/.exec(key);
  const base = (unit ? key.slice(0, -unit[0].length) : key).replace(/_/g, " ");
  const label = key === "failed" ? "failed checks" : base;
  return unit ? `${label} (${unit[1]})` : label;
}

function formatValue(value: unknown): string | null {
  if (typeof value === "number") return Number.isFinite(value) ? String(Math.round(value * 100) / 100) : null;
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") return value.length <= 40 ? value : `${value.slice(0, 39)}…`;
  if (Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number")) {
    return value.length ? value.join(", ") : "none";
  }
  return null;
}
