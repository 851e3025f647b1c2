export { Router, messageId, type RouterOptions, type RouterDeps } from "./router.ts";
export { loadRouterConfig, routerSchema, routerSettings, type RouterConfig } from "./config.ts";
export { routerOptionsFrom } from "./options.ts";
