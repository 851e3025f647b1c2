/**
 * The session state machine of PesanClient, apart from its I/O: where the session stands on
 * the current server, and where `CAP ACK` stands. Each transition is a method that says which
 * states it leaves from; a call in any other state changes nothing and returns false, so a
 * late background step (a reply for a server the client has left) cannot corrupt the state.
 *
 *   none ──login──▶ bound ──lost (NOT_LOGGED_IN) / serverChanged──▶ unbound ──beginResume──▶ resuming
 *   resuming ──loggedIn──▶ bound     resuming ──resumeFailed(transient)──▶ unbound (retried after a good heartbeat)
 *   resuming ──resumeFailed(final)──▶ detached (kept: the next server change tries RESUME again)
 *   resuming ──resumeRefused (ERR AUTH)──▶ none        any ──forget (BYE, LOGOUT)──▶ none
 *
 * CAP: off (not wanted) | unsent (wanted on this server) | sending | ok | failed; each server
 * change starts again at unsent.
 */

export interface PesanSession {
  user: string;
  token: string;
}

export type SessionPhase =
  /** No session. */
  | "none"
  /** The current server knows the session at this client's address. */
  | "bound"
  /** A session is held but the current server does not know it here: RESUME is due. */
  | "unbound"
  /** RESUME is on its way. */
  | "resuming"
  /** RESUME was refused here for a reason retrying will not fix; the next server tries again. */
  | "detached";

export type CapPhase = "off" | "unsent" | "sending" | "ok" | "failed";

export class SessionMachine {
  private phaseValue: SessionPhase = "none";
  private capValue: CapPhase;
  private sessionValue: PesanSession | undefined;
  private readonly capWanted: boolean;

  constructor(capAck: boolean) {
    this.capWanted = capAck;
    this.capValue = capAck ? "unsent" : "off";
  }

  get phase(): SessionPhase {
    return this.phaseValue;
  }

  get cap(): CapPhase {
    return this.capValue;
  }

  get session(): PesanSession | undefined {
    return this.sessionValue;
  }

  /** An `OK LOGIN` (to LOGIN or RESUME) from the current server: bound, whatever came before. */
  loggedIn(session: PesanSession): void {
    this.sessionValue = session;
    this.phaseValue = "bound";
  }

  /** The session ended (BYE, OK BYE, OK UNREGISTERED, LOGOUT, a RESUME refused with AUTH). */
  forget(): void {
    this.sessionValue = undefined;
    this.phaseValue = "none";
  }

  /** The client moved to another server: a held session must be resumed there; CAP again. */
  serverChanged(): void {
    this.phaseValue = this.sessionValue ? "unbound" : "none";
    this.capValue = this.capWanted ? "unsent" : "off";
  }

  /** The current server said NOT_LOGGED_IN although the session was bound here. */
  lost(): boolean {
    if (this.phaseValue !== "bound") return false;
    this.phaseValue = "unbound";
    return true;
  }

  beginResume(): boolean {
    if (this.phaseValue !== "unbound" || !this.sessionValue) return false;
    this.phaseValue = "resuming";
    return true;
  }

  /** RESUME got no OK: transient (no reply, UNAVAILABLE, RATE_LIMITED) or final (anything else). */
  resumeFailed(transient: boolean): boolean {
    if (this.phaseValue !== "resuming") return false;
    this.phaseValue = transient ? "unbound" : "detached";
    return true;
  }

  /** RESUME refused with ERR AUTH: the token is no good anywhere. */
  resumeRefused(): boolean {
    if (this.phaseValue !== "resuming") return false;
    this.forget();
    return true;
  }

  capStarted(): boolean {
    if (this.capValue !== "unsent") return false;
    this.capValue = "sending";
    return true;
  }

  /** ok: `OK CAP ACK`; unsent: refused until logged in (sent again after OK LOGIN); failed: any other answer. */
  capEnded(result: "ok" | "unsent" | "failed"): boolean {
    if (this.capValue !== "sending") return false;
    this.capValue = result;
    return true;
  }
}
