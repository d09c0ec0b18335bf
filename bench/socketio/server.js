#!/usr/bin/env node
// The peer bench server: Socket.IO 4 + @socket.io/redis-adapter, implementing
// the contract of docs/benchmarks.md so that the same load
// generator drives it and crosswire's bench server side by side.
//
//   node server.js --port 9101 --name n1 [--redis redis://127.0.0.1:6390 ...] [--nodes 2]
//
// Environment equivalents: PORT, NODE_NAME, REDIS_URLS (comma separated), NODES.
// --strategy and --redundant are accepted and ignored (crosswire-only options).
// Listens on 127.0.0.1 only, WebSocket transport only; prints a line with
// "listening" when ready; exits on SIGTERM/SIGINT.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const o = {
    port: Number(process.env.PORT || 9101),
    name: process.env.NODE_NAME || "n1",
    redis: process.env.REDIS_URLS ? process.env.REDIS_URLS.split(",").filter(Boolean) : [],
    nodes: process.env.NODES ? Number(process.env.NODES) : undefined,
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--port": o.port = Number(next()); break;
      case "--name": o.name = next(); break;
      case "--redis": o.redis.push(next()); break;
      case "--nodes": o.nodes = Number(next()); break;
      case "--strategy": next(); break;
      case "--redundant": break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!Number.isInteger(o.port) || o.port <= 0 || o.port > 65535) throw new Error("bad --port");
  if (o.nodes === undefined) o.nodes = o.redis.length ? 2 : 1;
  return o;
}

function str(v) {
  return typeof v === "string" && v.length > 0 ? v : null;
}

async function main() {
  const args = parseArgs(process.argv);
  const httpServer = http.createServer((req, res) => {
    res.writeHead(404);
    res.end();
  });
  const io = new Server(httpServer, {
    transports: ["websocket"],
    serveClient: false,
    // Defaults otherwise (pingInterval 25 s, no per-message deflate).
  });

  let clients = [];
  if (args.redis.length > 0) {
    // The adapter uses one Redis only (the first URL), as docs/benchmarks.md says.
    const { createAdapter } = require("@socket.io/redis-adapter");
    const { createClient } = require("redis");
    const pub = createClient({ url: args.redis[0] });
    const sub = pub.duplicate();
    pub.on("error", (e) => console.error(`redis pub: ${e.message}`));
    sub.on("error", (e) => console.error(`redis sub: ${e.message}`));
    await Promise.all([pub.connect(), sub.connect()]);
    // requestsTimeout bounds serverSideEmit acks (rpc, count): 5 s.
    io.adapter(createAdapter(pub, sub, { requestsTimeout: 5000 }));
    clients = [pub, sub];
  }
  const clustered = args.redis.length > 0;
  const localCount = (room) => {
    const set = io.of("/").adapter.rooms.get(room);
    return set ? set.size : 0;
  };

  // Server-side events (serverSideEmit from other nodes).
  io.on("rpc", (p, ack) => {
    if (typeof ack !== "function") return;
    // Every other node receives it; only the target answers with data.
    ack(p && p.target === args.name ? p.data : null);
  });
  io.on("count", (p, ack) => {
    if (typeof ack !== "function") return;
    ack(p ? localCount(`${p.ns}:${p.room}`) : 0);
  });

  io.on("connection", (socket) => {
    const id = str(socket.handshake.query.id);
    if (!id) {
      socket.disconnect(true);
      return;
    }
    // Socket.IO cannot choose socket.id: a private room stands for the id.
    socket.join(`u:${id}`);

    socket.on("join", (p, cb) => {
      const ns = str(p && p.ns);
      const room = str(p && p.room);
      if (ns && room) socket.join(`${ns}:${room}`);
      if (typeof cb === "function") cb({ ok: Boolean(ns && room) });
    });
    socket.on("room", (p) => {
      const ns = str(p && p.ns);
      const room = str(p && p.room);
      if (ns && room) io.to(`${ns}:${room}`).emit("room", p.data === undefined ? null : p.data);
    });
    socket.on("to", (p) => {
      const to = str(p && p.to);
      if (to) io.to(`u:${to}`).emit("to", p.data === undefined ? null : p.data);
    });
    socket.on("all", (p) => {
      io.emit("all", p && p.data !== undefined ? p.data : null);
    });
    socket.on("echo", (p, cb) => {
      if (typeof cb === "function") cb(p);
    });
    socket.on("rpc", (p, cb) => {
      if (typeof cb !== "function") return;
      const target = str(p && p.target);
      if (!target) return;
      const data = p.data === undefined ? null : p.data;
      if (target === args.name) {
        cb(data);
        return;
      }
      if (!clustered) return; // no such node
      io.serverSideEmit("rpc", { target, data }, (err, responses) => {
        if (err && !responses) return;
        const hit = (responses || []).find((r) => r !== null && r !== undefined);
        if (hit !== undefined) cb(hit);
      });
    });
    socket.on("count", (p, cb) => {
      if (typeof cb !== "function") return;
      const ns = str(p && p.ns);
      const room = str(p && p.room);
      if (!ns || !room) return;
      const local = localCount(`${ns}:${room}`);
      if (!clustered) {
        cb({ total: local });
        return;
      }
      // The Redis adapter counts the other nodes itself (PUBSUB NUMSUB).
      io.serverSideEmit("count", { ns, room }, (err, responses) => {
        if (err) return; // a node did not answer: no reply (the client times out)
        const others = (responses || []).reduce((a, b) => a + (Number(b) || 0), 0);
        cb({ total: local + others });
      });
    });
  });

  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(args.port, "127.0.0.1", resolve);
  });
  console.log(`socketio-bench ${args.name} listening on 127.0.0.1:${args.port}` +
    (clustered ? ` (redis ${args.redis[0]}, nodes ${args.nodes})` : ""));

  const stop = async () => {
    io.close();
    await Promise.allSettled(clients.map((c) => c.quit()));
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(`socketio-bench: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
