/**
 * Finds which of a fixed set of keywords occur in a text, in one pass and case-insensitively
 * (ASCII). Hand-written rather than a regex alternation: V8 tries an alternation of a few
 * hundred literals one after another at every position, and a match object per hit costs more
 * than the scan; an Aho-Corasick automaton compiled to a table makes one lookup per character
 * whatever the number of keywords.
 */
export interface KeywordScanner {
  /** Calls `found(index)` for each keyword (index into the list given) that occurs in `text`. */
  scan(text: string, found: (keyword: number) => void): void;
}

export function createKeywordScanner(keywords: readonly string[]): KeywordScanner {
  // Characters that occur in some keyword get a class of their own; every other character is
  // class 0 and sends the automaton back to its start.
  const classOf = new Uint8Array(128);
  let classes = 1;
  for (const keyword of keywords) {
    if (keyword === "" || keyword !== keyword.toLowerCase() || /[^\x20-\x7e]/.test(keyword)) {
      throw new RangeError(`keyword must be non-empty printable lowercase ASCII: ${keyword}`);
    }
    for (const char of keyword) {
      const code = char.charCodeAt(0);
      if (classOf[code] === 0) classOf[code] = classes++;
    }
  }
  for (let code = 65; code <= 90; code++) classOf[code] = classOf[code + 32] ?? 0;

  // The trie, then failure links breadth-first, then the full transition table.
  const children: Map<number, number>[] = [new Map()];
  const outputs: number[][] = [[]];
  keywords.forEach((keyword, index) => {
    let state = 0;
    for (const char of keyword) {
      const cls = classOf[char.charCodeAt(0)] ?? 0;
      let next = children[state]?.get(cls);
      if (next === undefined) {
        next = children.length;
        children.push(new Map());
        outputs.push([]);
        children[state]?.set(cls, next);
      }
      state = next;
    }
    outputs[state]?.push(index);
  });
  const states = children.length;
  const table = new Int32Array(states * classes);
  const failure = new Int32Array(states);
  const queue: number[] = [];
  for (let cls = 1; cls < classes; cls++) {
    const next = children[0]?.get(cls) ?? 0;
    table[cls] = next;
    if (next !== 0) queue.push(next);
  }
  for (let head = 0; head < queue.length; head++) {
    const state = queue[head] ?? 0;
    const fail = failure[state] ?? 0;
    outputs[state]?.push(...(outputs[fail] ?? []));
    for (let cls = 1; cls < classes; cls++) {
      const next = children[state]?.get(cls);
      if (next === undefined) {
        table[state * classes + cls] = table[fail * classes + cls] ?? 0;
      } else {
        failure[next] = table[fail * classes + cls] ?? 0;
        table[state * classes + cls] = next;
        queue.push(next);
      }
    }
  }
  // Premultiplied rows (a state is stored as its row's offset) and a flag per state that has
  // output: the scan loop does two table loads per character and nothing else.
  const rows = new Int32Array(states * classes);
  for (let i = 0; i < rows.length; i++) rows[i] = (table[i] ?? 0) * classes;
  const hasOutput = new Uint8Array(states * classes);
  for (let state = 0; state < states; state++) {
    if ((outputs[state]?.length ?? 0) > 0) hasOutput[state * classes] = 1;
  }

  return {
    scan(text, found) {
      let row = 0;
      for (let i = 0; i < text.length; i++) {
        const code = text.charCodeAt(i);
        row = code < 128 ? (rows[row + (classOf[code] ?? 0)] ?? 0) : 0;
        if (hasOutput[row] === 1)
          for (const keyword of outputs[row / classes] ?? []) found(keyword);
      }
    },
  };
}
