// client_op_id: 1–64 chars of [A-Za-z0-9_-], unique per user and session, also across reloads.

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

function randomPart(length: number): string {
  const bytes = new Uint8Array(length);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => ALPHABET[b % ALPHABET.length]).join("");
}

/** A generator of op ids that share one random per-page prefix and a counter. */
export function makeOpIdGenerator(prefix: string = randomPart(10)): () => string {
  let counter = 0;
  return () => `${prefix}-${(counter++).toString(36)}`;
}

export const nextOpId = makeOpIdGenerator();
