// An independent SMSC for the gateway's interop tests, on node-smpp's createServer.
// Configured by one JSON argument (see tests/interop/README.md); writes one JSON line per
// event to stdout: {"e":"listening"|"bound"|"submit"|"throttled"|"dlr_answered"|"mo_answered", ...}.
"use strict";
const smpp = require("smpp");
const cfg = JSON.parse(process.argv[2] || "{}");
const out = (o) => process.stdout.write(JSON.stringify({ t: Date.now(), ...o }) + "\n");
let submits = 0;
let nextId = cfg.first_id || 0x1a2b3c0;

function form(n, how) {
  switch (how) {
    case "hex": return n.toString(16);
    case "HEX": return n.toString(16).toUpperCase();
    case "HEX0": return n.toString(16).toUpperCase().padStart(12, "0");
    case "dec0": return String(n).padStart(12, "0");
    default: return String(n);
  }
}

function receipt(session, pdu, n, respId) {
  const rid = form(n, cfg.receipt_form || cfg.resp_form || "dec");
  const p = {
    source_addr: pdu.destination_addr,
    destination_addr: pdu.source_addr,
    esm_class: 4,
    short_message: `id:${rid} sub:001 dlvrd:001 submit date:2601011200 done date:2601011200 stat:DELIVRD err:000 text:x`,
  };
  if (cfg.tlv) {
    p.receipted_message_id = respId;
    p.message_state = 2;
  }
  session.deliver_sm(p, () => out({ e: "dlr_answered", id: rid }));
}

const server = smpp.createServer((session) => {
  let unbound = false;
  session.on("error", () => {});
  session.on("bind_transceiver", (pdu) => {
    session.send(pdu.response());
    out({ e: "bound" });
    for (const mo of cfg.mo || []) {
      session.deliver_sm(
        { source_addr: mo.from, destination_addr: mo.to, esm_class: 0, short_message: mo.text },
        () => out({ e: "mo_answered", from: mo.from })
      );
    }
  });
  session.on("enquire_link", (pdu) => session.send(pdu.response()));
  session.on("unbind", (pdu) => { session.send(pdu.response()); session.close(); });
  session.on("submit_sm", (pdu) => {
    submits += 1;
    const n = submits;
    const msg = pdu.short_message;
    const body = typeof msg === "object" && msg !== null && !Buffer.isBuffer(msg)
      ? JSON.stringify({ udh: msg.udh ? Buffer.from(msg.udh[0] || msg.udh).toString("hex") : "", m: msg.message })
      : String(msg);
    if (unbound) return; // an SMSC that has unbound takes nothing more
    if (cfg.throttle_every && n % cfg.throttle_every === 0) {
      out({ e: "throttled", n });
      session.send(pdu.response({ command_status: 0x58 }));
      return;
    }
    nextId += 1;
    const id = nextId;
    const respId = form(id, cfg.resp_form || "dec");
    out({ e: "submit", n, to: pdu.destination_addr, body, id: respId });
    if (cfg.receipt_first) {
      receipt(session, pdu, id, respId);
      setTimeout(() => session.send(pdu.response({ message_id: respId })), 20);
    } else {
      session.send(pdu.response({ message_id: respId }));
      setTimeout(() => receipt(session, pdu, id, respId), cfg.receipt_delay_ms || 10);
    }
    if (cfg.unknown_at === n) {
      // A command id SMPP 3.4 does not define: the ESME must answer generic_nack and stay.
      const raw = Buffer.alloc(16);
      raw.writeUInt32BE(16, 0); raw.writeUInt32BE(0x000001ab, 4); raw.writeUInt32BE(0, 8); raw.writeUInt32BE(999999, 12);
      session.socket.write(raw);
      out({ e: "unknown_sent" });
    }
    if (cfg.unbind_at === n) {
      unbound = true;
      // Our own unbind mid-burst; the receipts still due go out after it, then we close.
      setTimeout(() => session.unbind(), 5);
      setTimeout(() => session.close(), 1500);
      out({ e: "unbind_sent" });
    }
  });
});
server.listen(cfg.port || 0, "127.0.0.1", () => out({ e: "listening", port: server.address().port }));
