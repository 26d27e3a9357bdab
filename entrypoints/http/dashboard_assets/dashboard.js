// Live dashboard: follows /ws?all=true and draws verifications, counters and a feed.
// Every value from an event is written with textContent, never parsed as HTML.
"use strict";

(function () {
  const STAGES = ["requested", "sent", "delivered", "read"];
  // Delivery statuses that Twilio reports before "sent" count as the request stage.
  const DELIVERY_STAGES = {
    accepted: "requested",
    queued: "requested",
    sending: "requested",
    sent: "sent",
    delivered: "delivered",
    read: "read",
  };
  const STATUSES = [...STAGES, "failed", "rejected", "approved"];
  const MAX_ROWS = 50;
  const MAX_FEED_ITEMS = 100;
  const MINUTES_SHOWN = 10;
  const MAX_SEEN_FRAMES = 5000;
  const MAX_RETRY_SECONDS = 30;

  const errorMeanings = JSON.parse(document.getElementById("error-meanings").textContent);
  const verifications = new Map();
  const minutes = new Map();
  // The hub sends recent events again after a reconnect; these keys skip repeats.
  const seenFrames = new Set();
  let retrySeconds = 1;

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = new URL(scheme + "//" + window.location.host + "/ws");
    url.searchParams.set("all", "true");
    const token = new URLSearchParams(window.location.search).get("token");
    if (token) {
      url.searchParams.set("token", token);
    }
    const socket = new WebSocket(url.toString());
    socket.addEventListener("open", function () {
      retrySeconds = 1;
      showConnection("live", "live");
    });
    socket.addEventListener("message", function (message) {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (frame && typeof frame === "object") {
        handleFrame(frame);
      }
    });
    socket.addEventListener("close", function (closed) {
      const reason = closed.reason || "connection lost";
      // 1008 means the token or the request was refused: retrying cannot help.
      if (closed.code === 1008) {
        showConnection("refused", "refused: " + reason);
        return;
      }
      showConnection("retrying", reason + "; retrying in " + retrySeconds + " s");
      window.setTimeout(connect, retrySeconds * 1000);
      retrySeconds = Math.min(retrySeconds * 2, MAX_RETRY_SECONDS);
    });
  }

  function showConnection(state, text) {
    const element = document.getElementById("connection");
    element.dataset.state = state;
    element.textContent = text;
  }

  function handleFrame(frame) {
    if (typeof frame.event !== "string" || typeof frame.verification_id !== "string") {
      return;
    }
    const key = [frame.event, frame.verification_id, frame.delivery_status, frame.occurred_at]
      .map(String)
      .join("|");
    if (seenFrames.has(key)) {
      return;
    }
    seenFrames.add(key);
    if (seenFrames.size > MAX_SEEN_FRAMES) {
      seenFrames.delete(seenFrames.values().next().value);
    }

    const item = verificationFor(frame.verification_id);
    const stage = applyFrame(item, frame);
    item.updatedAt = frame.occurred_at || new Date().toISOString();
    countMinute(item.updatedAt, stage);
    addFeedItem(frame);
    render();
  }

  function verificationFor(id) {
    let item = verifications.get(id);
    if (!item) {
      item = { id: id, phone: "", stage: -1, times: {}, outcome: null, approved: false };
      verifications.set(id, item);
    }
    verifications.delete(id);
    verifications.set(id, item);
    while (verifications.size > MAX_ROWS) {
      verifications.delete(verifications.keys().next().value);
    }
    return item;
  }

  // Return the stage or outcome this frame reached, for the per-minute counters.
  function applyFrame(item, frame) {
    if (frame.event === "code_sent") {
      if (typeof frame.phone === "string") {
        item.phone = maskDigits(frame.phone);
      }
      return reachStage(item, "requested", frame.occurred_at);
    }
    if (frame.event === "delivery_status") {
      const stage = DELIVERY_STAGES[frame.delivery_status];
      if (stage) {
        return reachStage(item, stage, frame.occurred_at);
      }
      item.outcome = failure("failed", frame.error_code, frame.error_message || frame.message);
      return "failed";
    }
    if (frame.event === "send_failed") {
      item.outcome = failure("failed", frame.error_code, frame.message);
      return "failed";
    }
    if (frame.event === "send_rejected") {
      item.outcome = failure("rejected", null, frame.message);
      return "rejected";
    }
    if (frame.event === "check_approved") {
      item.approved = true;
      return "approved";
    }
    return null;
  }

  // Delivery stages only move forward: a late "delivered" after "read" changes nothing.
  function reachStage(item, stage, occurredAt) {
    const index = STAGES.indexOf(stage);
    if (!(stage in item.times)) {
      item.times[stage] = occurredAt;
    }
    if (index > item.stage) {
      item.stage = index;
    }
    return stage;
  }

  function failure(kind, code, text) {
    const meaning = code != null ? errorMeanings[String(code)] : undefined;
    return {
      kind: kind,
      code: code != null ? String(code) : "",
      text: maskDigits(String(meaning || text || "")),
    };
  }

  function statusOf(item) {
    if (item.outcome) {
      return item.outcome.kind;
    }
    if (item.approved) {
      return "approved";
    }
    return item.stage >= 0 ? STAGES[item.stage] : "requested";
  }

  function countMinute(occurredAt, stage) {
    const minute = String(occurredAt).slice(0, 16);
    let counts = minutes.get(minute);
    if (!counts) {
      counts = { all: 0 };
      minutes.set(minute, counts);
    }
    counts.all += 1;
    if (stage) {
      counts[stage] = (counts[stage] || 0) + 1;
    }
  }

  function render() {
    renderStatusCounters();
    renderMinutes();
    renderVerifications();
  }

  function renderStatusCounters() {
    const counts = {};
    for (const item of verifications.values()) {
      const status = statusOf(item);
      counts[status] = (counts[status] || 0) + 1;
    }
    const list = document.getElementById("status-counters");
    list.replaceChildren(
      ...STATUSES.map(function (status) {
        const entry = element("li", "", { "data-status": status });
        entry.append(element("span", status, { class: "label" }));
        entry.append(element("span", String(counts[status] || 0), { class: "count" }));
        return entry;
      }),
    );
  }

  function renderMinutes() {
    const body = document.querySelector("#minute-counters tbody");
    const shown = [...minutes.keys()].sort().reverse().slice(0, MINUTES_SHOWN);
    body.replaceChildren(
      ...shown.map(function (minute) {
        const counts = minutes.get(minute);
        const row = element("tr", "", { "data-minute": minute });
        row.append(element("td", minute.replace("T", " ")));
        for (const name of ["requested", "sent", "delivered", "read", "failed", "all"]) {
          row.append(element("td", String(counts[name] || 0)));
        }
        return row;
      }),
    );
  }

  function renderVerifications() {
    const body = document.querySelector("#verifications tbody");
    const items = [...verifications.values()].reverse();
    body.replaceChildren(...items.map(verificationRow));
    document.getElementById("no-verifications").hidden = items.length > 0;
  }

  function verificationRow(item) {
    const status = statusOf(item);
    const row = element("tr", "", { "data-verification-id": item.id, "data-status": status });
    row.append(element("td", item.id, { class: "id" }));
    row.append(element("td", item.phone || "—", { class: "phone" }));
    row.append(element("td", status, { class: "status" }));
    row.append(timelineCell(item));
    row.append(element("td", formatTime(item.updatedAt), { class: "updated" }));
    return row;
  }

  function timelineCell(item) {
    const cell = element("td", "", { class: "timeline" });
    const list = element("ol", "");
    STAGES.forEach(function (stage, index) {
      const reached = index <= item.stage || stage in item.times;
      const step = element("li", stage, {
        "data-stage": stage,
        "data-reached": reached ? "true" : "false",
      });
      if (item.times[stage]) {
        step.title = formatTime(item.times[stage]);
      }
      list.append(step);
    });
    if (item.outcome) {
      const label = item.outcome.code
        ? item.outcome.kind + " " + item.outcome.code + ": " + item.outcome.text
        : item.outcome.kind + ": " + item.outcome.text;
      list.append(element("li", label, { "data-stage": item.outcome.kind, class: "outcome" }));
    }
    cell.append(list);
    return cell;
  }

  function addFeedItem(frame) {
    const feed = document.getElementById("feed");
    const entry = element("li", "", { "data-event": frame.event });
    entry.append(element("time", formatTime(frame.occurred_at)));
    entry.append(element("span", frame.verification_id, { class: "id" }));
    const what = frame.delivery_status ? frame.event + " " + frame.delivery_status : frame.event;
    entry.append(element("span", String(what), { class: "event" }));
    entry.append(element("span", maskDigits(String(frame.message || "")), { class: "message" }));
    feed.prepend(entry);
    while (feed.children.length > MAX_FEED_ITEMS) {
      feed.lastElementChild.remove();
    }
  }

  function element(tag, text, attributes) {
    const node = document.createElement(tag);
    node.textContent = text;
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, value);
    }
    return node;
  }

  function formatTime(value) {
    const text = String(value || "");
    return text.length >= 19 ? text.slice(0, 19).replace("T", " ") : text;
  }

  // The service masks phone numbers before it publishes. Masking again here, as
  // mask_phone in domain/phone.py does, keeps a full number off the page even when
  // another publisher on the channel sends one.
  function maskDigits(text) {
    return text.replace(/\+?\d(?:[ .\-()]*\d){6,}/g, function (number) {
      if (number.length <= 8) {
        return "*".repeat(number.length - 2) + number.slice(-2);
      }
      return number.slice(0, 4) + "*".repeat(number.length - 7) + number.slice(-3);
    });
  }

  render();
  connect();
})();
