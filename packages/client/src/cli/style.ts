/**
 * How the chat CLI prints what it received: every field escaped (escape.ts), so nothing from
 * the network reaches the terminal as a control character, and coloured with util.styleText
 * only where colour is wanted: a terminal, and no NO_COLOR (https://no-color.org). A pipe or a
 * file gets the plain text, byte for byte what it got before colours existed.
 */
import { styleText } from "node:util";
import { parseServerLine } from "@pesan/shared/protocol";
import { escapeControls } from "./escape.ts";

type Format = Parameters<typeof styleText>[0];
export type Paint = (format: Format, text: string) => string;

export interface ColourTarget {
  isTTY?: boolean;
  hasColors?: (count?: number, env?: object) => boolean;
}

/** Colour on a terminal that has at least 16 colours, unless NO_COLOR is set (to anything but ""). */
export function colourWanted(stream: ColourTarget, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (stream.isTTY !== true) return false;
  return stream.hasColors?.(16, env) ?? false;
}

export function painter(enabled: boolean): Paint {
  // The decision is colourWanted's: styleText's own stream check would look at stdout even
  // for what goes to stderr.
  return enabled ? (format, text) => styleText(format, text, { validateStream: false }) : (_format, text) => text;
}

/** One received datagram (own tag already removed) as a printable line. */
export function formatReceived(raw: string, paint: Paint): string {
  const e = escapeControls;
  const line = parseServerLine(raw);
  switch (line.kind) {
    case "MSG": {
      const head = `MSG ${line.id} ${line.from} ${line.time} `;
      if (!raw.startsWith(head)) break;
      return `${paint("dim", `MSG ${e(line.id)}`)} ${paint(["bold", "cyan"], e(line.from))} ${paint("dim", e(line.time))} ${e(raw.slice(head.length))}`;
    }
    case "ERR":
      return paint("red", e(raw));
    case "OK":
      return paint("green", e(raw));
    case "BYE":
    case "REDIRECT":
      return paint("yellow", e(raw));
    default:
      break;
  }
  return e(raw);
}

/** A notice of the client's own (which may quote the network: error texts, names). */
export function formatNotice(text: string, paint: Paint): string {
  return paint("yellow", `* ${escapeControls(text)}`);
}
