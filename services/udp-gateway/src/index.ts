export { Gateway, formatAddr, splitAddr, type GatewayOptions, type GatewayDeps } from "./gateway.ts";
export { loadGatewayConfig, gatewaySchema, gatewaySettings, type GatewayConfig } from "./config.ts";
export { gatewayOptionsFrom } from "./options.ts";
