/**
 * The inbound side of the links: a fastify server on SYNC_LISTEN (https when a certificate is
 * configured). Every request is authenticated, checked against replays, validated, and only
 * then handed to the handlers; every answer is signed with the link's key.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { z } from "zod";
import type { Logger } from "@pesan/shared/observability";
import { authenticate, nonceExpiry, refuse, type Refusal, type RefusalReason, type ReplayGuard } from "./auth.ts";
import { announceBody, FrameError, framesBody, helloBody, PATHS, type AnnounceBody, type FramesAck, type FramesBody, type HelloBody, type StatusReply } from "./frames.ts";
import type { PeerSyncMetrics } from "./metrics.ts";
import { HEADERS, signResponse } from "./signing.ts";
import { JOIN_PATH } from "./membership/checks.ts";
import { RateLimiter } from "@pesan/shared/rate-limit";
import type { JoinReply, JoinRequest } from "./membership/join.ts";

export interface SyncHandlers {
  announce(peer: string, body: AnnounceBody): Promise<StatusReply>;
  hello(peer: string, body: HelloBody): Promise<StatusReply>;
  frames(peer: string, body: FramesBody): Promise<FramesAck>;
}

export interface SyncServerOptions {
  self: string;
  /** The key of each linked cluster, read at every request: peer-sync adds and removes members while running. */
  keys: ReadonlyMap<string, string>;
  host: string;
  port: number;
  windowMs: number;
  tls?: { cert: Buffer; key: Buffer };
}

export interface SyncServerDeps {
  replay: ReplayGuard;
  handlers: SyncHandlers;
  logger: Logger;
  metrics: PeerSyncMetrics;
  clock?: () => number;
  /** Join requests (signed under an invite, not a link key: membership/join.ts); none: 404. */
  join?: { handle(req: JoinRequest): Promise<JoinReply> };
}

const BODY_LIMIT = 8 * 1024 * 1024;
/** At most one refusal log line per reason per second: a flood of forgeries must not flood the logs. */
const REFUSAL_LOG_EVERY_MS = 1000;
/**
 * /v1/join's limits, checked before any database work (each join locks an invite row and
 * verifies a MAC): a few joins a second is far more than a federation ever makes, and a
 * newcomer refused with 429 retries with backoff. Per remote IP, and for all IPs together
 * (a flood from many addresses).
 */
export const JOIN_LIMITS = { perIp: { perSec: 1, burst: 10 }, all: { perSec: 10, burst: 50 } } as const;
/** Idle IPs' buckets are forgotten once this many are held (memory stays bounded). */
const JOIN_LIMITER_SWEEP_AT = 10_000;

export class SyncServer {
  readonly name = "sync-server";
  private readonly app: FastifyInstance;
  private readonly o: SyncServerOptions;
  private readonly d: SyncServerDeps;
  private readonly clock: () => number;
  private readonly lastLogged = new Map<RefusalReason, { at: number; suppressed: number }>();
  private readonly joinPerIp = new RateLimiter(JOIN_LIMITS.perIp.perSec, JOIN_LIMITS.perIp.burst);
  private readonly joinAll = new RateLimiter(JOIN_LIMITS.all.perSec, JOIN_LIMITS.all.burst);
  private started = false;
  private closed = false;
  address = "";

  constructor(o: SyncServerOptions, d: SyncServerDeps) {
    this.o = o;
    this.d = d;
    this.clock = d.clock ?? Date.now;
    const common = { logger: false, bodyLimit: BODY_LIMIT, keepAliveTimeout: 65_000 };
    // The two overloads differ only in the server type; the routes below use neither.
    this.app = (o.tls ? Fastify({ ...common, https: { cert: o.tls.cert, key: o.tls.key } }) : Fastify(common)) as unknown as FastifyInstance;
    // Signatures cover the exact bytes received, so the body must reach us unparsed.
    this.app.removeAllContentTypeParsers();
    this.app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
    this.route(PATHS.announce, announceBody, (peer, b) => d.handlers.announce(peer, b));
    this.route(PATHS.hello, helloBody, (peer, b) => d.handlers.hello(peer, b));
    this.route(PATHS.frames, framesBody, (peer, b) => d.handlers.frames(peer, b));
    const join = d.join;
    if (join) {
      this.app.post(JOIN_PATH, async (req, reply) => {
        const limited = this.joinLimited(req.ip);
        if (limited) return this.refuse(req, reply, refuse(429, "rate_limited", undefined, limited));
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        let r: JoinReply;
        try {
          r = await join.handle({ method: req.method, path: req.url, headers: req.headers, body });
        } catch (err) {
          this.d.logger.error({ err }, "cannot handle a join request");
          return reply.code(503).send({ error: "unavailable", message: "this server could not handle the join; send it again" });
        }
        if (r.signature) reply.header(HEADERS.signature, r.signature);
        return reply.code(r.status).header("content-type", "application/json").send(r.text);
      });
    }
  }

  private route<S extends z.ZodType>(path: string, schema: S, handle: (peer: string, body: z.infer<S>) => Promise<unknown>): void {
    this.app.post(path, async (req, reply) => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const auth = authenticate({ method: req.method, path: req.url, headers: req.headers, body }, { self: this.o.self, keys: this.o.keys, now: this.clock(), windowMs: this.o.windowMs });
      if (!auth.ok) return this.refuse(req, reply, auth);
      let first: boolean;
      try {
        first = await this.d.replay.firstUse(auth.peer, auth.nonce, nonceExpiry(auth.timestamp, this.o.windowMs));
      } catch (err) {
        this.d.logger.error({ err, peer: auth.peer }, "cannot record the request's nonce");
        return reply.code(503).send({ error: "unavailable", message: "this server cannot reach its database" });
      }
      if (!first) return this.refuse(req, reply, refuse(401, "replay", auth.peer, "this request was already received (replayed nonce)"));
      let parsed: z.infer<S>;
      try {
        const result = schema.safeParse(JSON.parse(body.toString("utf8")));
        if (!result.success) return this.refuse(req, reply, refuse(400, "bad_frame", auth.peer, `invalid body: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`));
        parsed = result.data;
      } catch {
        return this.refuse(req, reply, refuse(400, "bad_frame", auth.peer, "the body is not JSON"));
      }
      let answer: unknown;
      try {
        answer = await handle(auth.peer, parsed);
      } catch (err) {
        if (err instanceof FrameError) return this.refuse(req, reply, refuse(400, "bad_frame", auth.peer, err.message));
        this.d.logger.error({ err, peer: auth.peer, path }, "cannot apply a peer's request");
        return reply.code(503).send({ error: "unavailable", message: "this server could not apply the request; send it again" });
      }
      const text = JSON.stringify(answer);
      const signature = signResponse(auth.key, { status: 200, from: this.o.self, to: auth.peer, nonce: auth.nonce, body: text });
      return reply.code(200).header("content-type", "application/json").header(HEADERS.signature, signature).send(text);
    });
  }

  /** Why this join request is refused before any work (too many from its IP, or from everyone), or undefined. */
  private joinLimited(ip: string): string | undefined {
    const now = this.clock();
    if (this.joinPerIp.size >= JOIN_LIMITER_SWEEP_AT) this.joinPerIp.sweep(now);
    // The IP's bucket first: one flooding address must not use up everyone's.
    if (this.joinPerIp.take(ip, now) !== "ok") return "too many join requests from this address; send it again later";
    if (this.joinAll.take("*", now) !== "ok") return "too many join requests; send it again later";
    return undefined;
  }

  private refuse(req: FastifyRequest, reply: FastifyReply, r: Refusal): FastifyReply {
    this.d.metrics.refused.inc({ reason: r.reason });
    const now = this.clock();
    const last = this.lastLogged.get(r.reason);
    if (!last || now - last.at >= REFUSAL_LOG_EVERY_MS) {
      this.d.logger.warn({ peer: r.peer ?? null, reason: r.reason, path: req.url.slice(0, 64), remote: req.ip, suppressedSinceLast: last?.suppressed ?? 0 }, `peer request refused: ${r.message}`);
      this.lastLogged.set(r.reason, { at: now, suppressed: 0 });
    } else last.suppressed++;
    return reply.code(r.status).send({ error: r.reason, message: r.message });
  }

  async start(): Promise<void> {
    this.address = await this.app.listen({ host: this.o.host, port: this.o.port });
    this.started = true;
    this.d.logger.info({ address: this.address, tls: this.o.tls !== undefined }, "peer-sync endpoint listening");
  }

  async close(): Promise<void> {
    if (this.closed || !this.started) return;
    this.closed = true;
    await this.app.close();
  }
}
