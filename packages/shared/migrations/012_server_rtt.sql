-- The measured distance to a peer, in whole ms: peer-sync's quickest of the recent round trips
-- of its hellos to that peer, published with a hysteresis (services/peer-sync/src/rtt.ts).
-- NULL until measured once (this cluster's own row; servers known only from the routers'
-- static SERVERS list). A DOWN peer keeps its last value. SERVERS and ERR FULL order by it
-- (services/router/src/server-order.ts), with proximity (the PEERS order) as the tie-break.
ALTER TABLE server_list ADD COLUMN rtt_ms integer CHECK (rtt_ms >= 0);
