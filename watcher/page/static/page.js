// The status page: fetches api/status every few seconds and draws it. Every name and text from the
// agent goes into the page with textContent (never as HTML); the CSP allows no inline script or style.
import {
  el,
  append,
  mediaUrl,
  baseName,
  dirName,
  joinPath,
  shellQuote,
  bytes,
  parseTime,
  clock,
  relative,
  timeText,
  accountName,
  count,
  bar,
  pathBlock,
} from "./format.js";

(function () {
  const REFRESH_MS = 3000;
  const MAX_FAILURES = 50; // failed uploads listed; `minimax-watcher status` lists them all
  const FETCH_TIMEOUT_MS = 8000;
  const REDRAW_MS = 30000;

  const byId = (id) => document.getElementById(id);
  let lastText = null;
  let lastOk = null;
  let lastDrawn = 0;
  let timer = null;
  const thumbCards = new Map(); // kept across refreshes, so images are not fetched again
  const videoCards = new Map(); // ... and a playing video keeps playing

  // ---- the agent line and the banner ----

  function showAgent(state, text) {
    const agent = byId("agent");
    agent.dataset.state = state;
    byId("agent-text").textContent = text;
  }

  function showBanner(title, text) {
    const banner = byId("banner");
    banner.hidden = !title;
    byId("banner-title").textContent = title || "";
    byId("banner-text").textContent = text || "";
  }

  function renderAgent(report) {
    const agent = report.agent;
    if (agent && typeof agent === "object") {
      const since = parseTime(agent.since);
      showAgent("running", "Running" + (since ? " since " + clock(since) : "") + " · pid " + agent.pid);
      showBanner(null);
      return;
    }
    showAgent("down", "Agent not running");
    const other = report.other_agent;
    if (other && typeof other === "object") {
      showBanner(
        "The agent is not running for these folders.",
        "The agent on this state folder (pid " + other.pid + ") runs another config. " +
          "The counts below are read from the disk."
      );
    } else {
      showBanner(
        "The agent is not running.",
        "Nothing uploads until it runs again (systemctl start minimax-watcher). " +
          "The counts below are read from the disk."
      );
    }
  }

  // ---- folders ----

  function stat(label, value, kind) {
    const box = el("div", "stat" + (kind ? " " + kind : ""));
    append(box, el("span", "value", value), el("span", "label", label));
    return box;
  }

  function renderFolders(report) {
    const list = byId("folders");
    list.replaceChildren();
    const running = report.agent && typeof report.agent === "object";
    const standing = new Map();
    for (const entry of (running && report.agent.standing_by) || []) {
      if (entry && typeof entry === "object") standing.set(entry.folder, entry.held_by);
      else standing.set(entry, null);
    }
    for (const folder of report.folders || []) {
      const card = el("article", "card folder");
      const head = el("header", "card-head");
      append(head, pathBlock(folder.path, "path"), el("span", "muted", accountName(folder.account)));
      if (running && folder.watched === false) append(head, el("span", "pill warn", "not watched"));
      if (standing.has(folder.path)) {
        append(head, el("span", "pill held", "standing by"));
        const who = standing.get(folder.path);
        append(head, el("span", "muted", "another agent holds it" + (who ? ": " + who : "")));
      }
      const stats = el("div", "stats");
      append(
        stats,
        stat("uploaded", folder.uploaded, "ok"),
        stat("pending", folder.pending, folder.pending ? "busy" : ""),
        stat("failed", folder.failed, folder.failed ? "bad" : "")
      );
      append(card, head, stats);
      const videos = folder.videos;
      if (videos && typeof videos === "object") {
        const line = el("p", "videos-line");
        append(line, el("span", "label", "videos"));
        for (const key of ["done", "generating", "queued", "failed", "unknown"]) {
          const value = Number(videos[key]) || 0;
          if (value || key === "done") {
            const kind = key === "failed" || key === "unknown" ? " bad" : "";
            append(line, el("span", "chip" + (value ? kind : ""), value + " " + key));
          }
        }
        append(card, line);
      }
      append(list, card);
    }
    if (!list.childElementCount) append(list, el("p", "empty", "No folders in the config."));
  }

  // ---- accounts ----

  function accountHead(account, what, state, label) {
    const head = el("header", "card-head");
    const name = el("div", "who");
    append(name, el("span", "kind", what), el("span", "title", accountName(account)));
    append(head, name, el("span", "pill " + state, label));
    return head;
  }

  function renderAccounts(report) {
    const list = byId("accounts");
    list.replaceChildren();
    const agent = report.agent && typeof report.agent === "object" ? report.agent : null;
    for (const account of (agent && agent.accounts) || []) {
      const card = el("article", "card account");
      const state = account.state === "ok" ? "ok" : account.state === "held" ? "held" : "paused";
      append(card, accountHead(account.account, "uploads", state, state));
      if (state !== "ok") {
        append(card, el("p", "reason", account.reason || "no reason given"));
        append(card, el("p", "muted", "Next try " + timeText(account.next_probe)));
      }
      append(list, card);
    }
    for (const account of report.video_accounts || []) {
      const card = el("article", "card account");
      const paused = account.paused_until !== null && account.paused_until !== undefined;
      const capped = Number(account.today) >= Number(account.cap);
      const state = paused ? "paused" : capped ? "held" : "ok";
      append(card, accountHead(account.account, "videos", state, paused ? "paused" : capped ? "cap reached" : "ok"));
      const today = el("div", "meter");
      append(
        today,
        el("span", "muted", account.today + " of " + account.cap + " today (UTC)"),
        bar(account.today, account.cap, "videos today")
      );
      append(card, today);
      append(card, el("p", "muted", account.in_flight + " of " + account.max_jobs + " generating at once"));
      if (capped) append(card, el("p", "muted", "No new videos until 00:00 UTC."));
      if (paused) {
        append(card, el("p", "reason", account.pause_reason || "no reason given"));
        append(card, el("p", "muted", "Paused until " + timeText(account.paused_until)));
      }
      append(list, card);
    }
    byId("accounts-section").hidden = !list.childElementCount;
  }

  // ---- in flight ----

  function renderFlight(report) {
    const list = byId("flight");
    list.replaceChildren();
    const agent = report.agent && typeof report.agent === "object" ? report.agent : null;
    for (const upload of (agent && agent.uploading) || []) {
      const item = el("li", "flight-item");
      const size = Number(upload.size) || 0;
      const sent = Math.min(size, Number(upload.sent) || 0);
      const head = el("div", "flight-head");
      append(head, el("span", "kind", "uploading"), pathBlock(upload.file, "path"));
      append(head, el("span", "muted", bytes(sent) + " of " + bytes(size)));
      append(item, head, bar(sent, size, "sent"));
      append(list, item);
    }
    for (const folder of report.folders || []) {
      const videos = folder.videos;
      for (const video of (videos && videos.in_progress) || []) {
        const item = el("li", "flight-item");
        const percent = Math.max(0, Math.min(100, Number(video.percent) || 0));
        const head = el("div", "flight-head");
        append(head, el("span", "kind", "video"), pathBlock(joinPath(folder.path, video.file), "path"));
        append(head, el("span", "muted", Math.round(percent) + " %"));
        append(item, head, bar(percent, 100, "generated"));
        append(list, item);
      }
    }
    byId("flight-section").hidden = !list.childElementCount;
  }

  // ---- what needs attention ----

  function command(text) {
    const line = el("p", "todo");
    append(line, el("span", "label", "To do"), el("code", "cmd", text));
    return line;
  }

  function failureItem(title, where, reason, todo) {
    const item = el("li", "failure");
    append(item, pathBlock(title, "path"));
    if (where) append(item, el("p", "muted", where));
    if (reason) append(item, el("p", "reason", reason));
    if (todo) append(item, todo);
    return item;
  }

  function renderFailures(report) {
    const list = byId("failures");
    list.replaceChildren();
    const agent = report.agent && typeof report.agent === "object" ? report.agent : null;
    for (const blocked of (agent && agent.lock_blocked) || []) {
      append(list, failureItem(blocked.folder, "This folder is not held: nothing in it uploads.",
        blocked.problem, null));
    }
    let failures = 0;
    for (const folder of report.folders || []) {
      for (const failure of folder.failures || []) {
        if (++failures > MAX_FAILURES) continue;
        const path = joinPath(folder.path, failure.file);
        append(list, failureItem(path, "upload failed", failure.error || "no reason recorded",
          command("fix it, then: minimax-watcher retry " + shellQuote(path))));
      }
      failures += Number(folder.failures_omitted) || 0; // left out of the answer, counted
      const videos = folder.videos;
      const failed = videos ? Number(videos.failed) || 0 : 0;
      const unknown = videos ? Number(videos.unknown) || 0 : 0;
      if (failed || unknown) {
        const parts = [];
        if (failed) parts.push(count(failed, "video failed", "videos failed"));
        if (unknown) {
          parts.push(count(unknown, "video", "videos") + " whose answer was lost (it may exist " +
            "at useapi.net and may have spent credits: look there first)");
        }
        append(list, failureItem(folder.path, "video generation", parts.join("; "),
          command("minimax-watcher retry --failed --folder " + shellQuote(folder.path))));
      }
    }
    if (failures > MAX_FAILURES) {
      append(list, failureItem("… and " + count(failures - MAX_FAILURES, "more failed upload", "more failed uploads"),
        null, null, command("minimax-watcher status")));
    }
    byId("failures-section").hidden = !list.childElementCount;
    return list.childElementCount;
  }

  // ---- latest uploads ----

  async function copyText(text, code, button) {
    const done = (label) => {
      button.textContent = label;
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    };
    try {
      if (!navigator.clipboard) throw new Error("no clipboard");
      await navigator.clipboard.writeText(text);
      done("Copied");
    } catch (_) {
      // Not a secure context, or permission refused: select it, for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      done("Selected");
    }
  }

  function thumbCard(entry, url) {
    const item = el("li", "thumb");
    const frame = el("div", "frame");
    const img = el("img");
    img.alt = String(entry.file);
    img.loading = "lazy";
    img.decoding = "async";
    img.addEventListener("error", () => frame.classList.add("broken"));
    if (url) img.src = url;
    else frame.classList.add("broken"); // moved out of the folder (done_dir): no preview is served
    append(frame, img);
    const info = el("div", "info");
    const name = el("span", "name", baseName(entry.file));
    name.title = String(entry.file);
    const dir = dirName(entry.file);
    const when = parseTime(entry.uploaded);
    const where = baseName(entry.folder) + (dir ? "/" + dir : "") + (when ? " · " + clock(when) : "");
    append(info, name, el("span", "dir one-line", where));
    const idLine = el("div", "fileid");
    const code = el("code", "id", entry.fileID);
    const button = el("button", "copy", "Copy");
    button.type = "button";
    button.title = "Copy the fileID";
    button.addEventListener("click", () => copyText(String(entry.fileID), code, button));
    append(idLine, code, button);
    append(item, frame, info, idLine);
    return item;
  }

  function renderRecent(report) {
    const list = byId("recent");
    const items = [];
    const keep = new Set();
    for (const entry of report.recent || []) {
      const url = mediaUrl(entry.thumbnail);
      const key = [entry.folder, entry.file, entry.fileID, url].join("\n");
      keep.add(key);
      if (!thumbCards.has(key)) thumbCards.set(key, thumbCard(entry, url));
      items.push(thumbCards.get(key));
    }
    for (const key of [...thumbCards.keys()]) if (!keep.has(key)) thumbCards.delete(key);
    list.replaceChildren(...items);
    byId("recent-empty").hidden = items.length > 0;
  }

  // ---- generated videos ----

  function videoCard(folder, entry, url) {
    const item = el("li", "video");
    const video = el("video");
    video.controls = true;
    video.preload = "metadata";
    video.playsInline = true;
    video.src = url;
    const info = el("div", "info");
    const name = el("span", "name", baseName(entry.file));
    name.title = String(entry.file);
    append(info, name, el("span", "dir", baseName(folder.path)));
    append(info, el("code", "id", entry.videoId));
    append(item, video, info);
    return item;
  }

  function renderVideos(report) {
    const list = byId("videos");
    const items = [];
    const keep = new Set();
    for (const folder of report.folders || []) {
      for (const entry of (folder.videos && folder.videos.recent) || []) {
        const url = mediaUrl(entry.video);
        if (!url) continue;
        keep.add(url);
        if (!videoCards.has(url)) videoCards.set(url, videoCard(folder, entry, url));
        items.push(videoCards.get(url));
      }
    }
    for (const key of [...videoCards.keys()]) if (!keep.has(key)) videoCards.delete(key);
    // Moving a playing <video> in the DOM pauses it: touch the list only when it changed.
    const current = [...list.children];
    if (current.length !== items.length || current.some((node, i) => node !== items[i])) {
      list.replaceChildren(...items);
    }
    byId("videos-section").hidden = items.length === 0;
  }

  function render(report) {
    renderAgent(report);
    renderFolders(report);
    renderAccounts(report);
    renderFlight(report);
    const problems = renderFailures(report);
    renderRecent(report);
    renderVideos(report);
    const note = byId("note");
    note.hidden = !report.note;
    note.textContent = report.note ? String(report.note) : "";
    const agent = report.agent && typeof report.agent === "object" ? report.agent : null;
    const paused = ((agent && agent.accounts) || []).filter((a) => a.state !== "ok").length;
    const waiting = problems + paused;
    document.title = (!agent ? "(not running) " : waiting ? "(" + waiting + ") " : "") + "minimax-watcher";
  }

  // ---- the refresh loop ----

  function unreachable(why) {
    lastText = null; // the next answer is drawn again, even when it says what the last one said
    document.body.classList.add("stale");
    document.title = "(not answering) minimax-watcher";
    showAgent("down", "Agent not running");
    showBanner(
      "The agent is not answering (" + why + ").",
      (lastOk ? "What you see is from " + clock(lastOk) + ". " : "") +
        "Is it running? systemctl status minimax-watcher. This page tries again every few seconds."
    );
  }

  async function fetchStatus() {
    // The answer's text, or null (and the page says why) when the agent gave none.
    const abort = new AbortController();
    const stop = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      const answer = await fetch("api/status", { cache: "no-store", signal: abort.signal });
      if (!answer.ok) {
        unreachable("it answered " + answer.status);
        return null;
      }
      const text = await answer.text();
      JSON.parse(text);
      return text;
    } catch (error) {
      const name = error && error.name;
      const why = name === "AbortError" ? "no answer in time"
        : name === "SyntaxError" ? "an answer that is not its status" : "no connection";
      unreachable(why);
      return null;
    } finally {
      clearTimeout(stop);
    }
  }

  async function refresh() {
    try {
      const text = await fetchStatus();
      if (text === null) return;
      // Drawing drops what the reader has selected (a command to copy): while they select, news waits
      // up to REDRAW_MS; an unchanged status is drawn again then too, for its "in 2 min"s.
      const selecting = String(window.getSelection() || "") !== "";
      const due = Date.now() - lastDrawn > REDRAW_MS;
      if ((text !== lastText && (!selecting || due)) || (due && !selecting)) {
        lastText = text;
        lastDrawn = Date.now();
        render(JSON.parse(text)); // a mistake here is the page's: it shows as a page error
      }
      lastOk = new Date();
      document.body.classList.remove("stale");
      byId("updated").textContent =
        "Updated " + lastOk.toLocaleTimeString() + " · refreshes every " + REFRESH_MS / 1000 + " s";
    } finally {
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    // A hidden tab asks nothing; it refreshes as soon as it is shown again.
    timer = document.hidden ? null : setTimeout(refresh, REFRESH_MS);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer === null) refresh();
  });

  byId("where").textContent = location.host;
  refresh();
})();
