/**
 * Makes text from the network safe to print on a terminal: every character that a terminal
 * acts on instead of showing is written as a visible escape, so a message can neither forge a
 * second line (a fake `MSG ...` from someone else) nor move the cursor, clear the screen or
 * retitle the window.
 *
 *   \n \r \t \e (ESC) \b \f \v \0     the usual C names
 *   \xNN                              the other C0 controls and DEL (\x7f)
 *   \uNNNN                            C1 controls (U+0080-U+009F; U+009B is a one-byte CSI),
 *                                     line/paragraph separators (U+2028, U+2029) and the bidi
 *                                     embedding/override/isolate controls (U+202A-U+202E,
 *                                     U+2066-U+2069), which can make a line read differently
 *                                     from what it holds
 *   \\                                a backslash, so that a typed "\n" and a real newline
 *                                     stay distinguishable
 *
 * Everything else (any printable Unicode, emoji, CJK) passes unchanged.
 */

const NAMED: Readonly<Record<string, string>> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\x1b": "\\e",
  "\b": "\\b",
  "\f": "\\f",
  "\v": "\\v",
  "\0": "\\0",
  "\\": "\\\\",
};

// C0, DEL, C1, U+2028/2029, bidi controls, and the backslash itself.
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g;

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.charCodeAt(0);
  return code <= 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** The text with every control character written as a visible escape (see above). */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE, escapeOne);
}
