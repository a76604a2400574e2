/**
 * JSON.parse, except that integers too long for a JS number (TikTok's int64 post, video and music
 * ids) come back as strings with every digit, instead of silently rounded.
 */
export function parseJsonKeepingInt64(text: string): unknown {
  let out = '';
  let inString = false;
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if ((ch === '-' || (ch! >= '0' && ch! <= '9')) && /[:[,\s]/.test(prevNonSpace(text, i))) {
      let j = i + 1;
      while (j < text.length && /[0-9.eE+-]/.test(text[j]!)) j++;
      const num = text.slice(i, j);
      if (/^-?\d{16,}$/.test(num) && !Number.isSafeInteger(Number(num))) {
        out += `${text.slice(last, i)}"${num}"`;
        last = j;
      }
      i = j - 1;
    }
  }
  return JSON.parse(out + text.slice(last));
}

function prevNonSpace(text: string, i: number): string {
  for (let k = i - 1; k >= 0; k--) if (!/\s/.test(text[k]!)) return text[k]!;
  return ',';
}
