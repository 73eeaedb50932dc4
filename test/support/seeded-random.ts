/**
 * mulberry32, a small seeded PRNG: values in [0, 1) that look random but are the same on every
 * run, so a test's "random" inputs (generated secrets, dropped pushes) never change under it.
 */
export function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
