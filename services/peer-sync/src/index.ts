export { PeerSync, type PeerSyncOptions, type PeerSyncDeps } from "./peer-sync.ts";
export { loadPeerSyncConfig, parsePeers, type PeerConfig, type PeerSyncConfig } from "./config.ts";
export { peerSyncOptionsFrom } from "./options.ts";
export { signedHeaders, signRequest, verifyRequest, signResponse, verifyResponse, newNonce, HEADERS } from "./signing.ts";
export { PATHS, PROTOCOL_VERSION, FRAME_KINDS, oneByOne, type FrameKind, type FrameKinds, type ServerStatus } from "./frames.ts";
export { PeerClient, PeerCallError } from "./client.ts";
