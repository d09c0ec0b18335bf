// Type declarations of the ES module (src/websocket-connector.mjs): the same
// declarations as index.d.ts, with the class as the default export.
export * from './index.js';
import { WebSocketConnector } from './index.js';
export default WebSocketConnector;
