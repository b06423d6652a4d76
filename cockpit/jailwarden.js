/*
 * jailwarden's Cockpit page.
 *
 * Everything comes from the daemon's D-Bus API (org.jailwarden1, see
 * dbus/org.jailwarden1.xml) through one cockpit.dbus client: properties
 * and ObjectManager keep the header and the jails live, the Banned,
 * Unbanned and Reloaded signals keep the bans and the feed live, History
 * and BanHistogram feed the per-address history and the chart. Nothing is
 * polled and no text is parsed.
 *
 * Whether the daemon runs is watched on the bus (NameOwnerChanged), so
 * opening the page never starts it by bus activation; the client is made
 * when the name has an owner and closed when it goes away. Changes (Ban,
 * Unban, Reload) are offered only with administrative access
 * (cockpit.permission); the daemon decides anyway (root or polkit), and its
 * errors are shown where the change was asked for.
 */
"use strict";

(function () {
    const _ = cockpit.gettext;

    const NAME = "org.jailwarden1";
    const PATH = "/org/jailwarden1";
    const MANAGER = "org.jailwarden1.Manager";
    const JAIL = "org.jailwarden1.Jail";
    const UNIT = "jailwarden.service";
    /* 2^53 µs: the "permanent" duration that JavaScript numbers (and
     * Cockpit's bridge, which takes no integer beyond int64) can send. */
    const PERMANENT_USEC = 9007199254740992;
    const MAX_ROWS = 500;
    const FEED_MAX = 200;
    const HOUR = 3600e6;
    const DAY = 86400e6;

    const $ = id => document.getElementById(id);

    /* Elements from data: text is always text, never markup. */
    function el(tag, attrs, ...children) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === undefined || v === null || v === false)
                continue;
            if (k === "class")
                e.className = v;
            else if (k === "text")
                e.textContent = v;
            else if (k.startsWith("on"))
                e.addEventListener(k.slice(2), v);
            else if (k === "dataset")
                Object.assign(e.dataset, v);
            else
                e.setAttribute(k, v === true ? "" : v);
        }
        for (const c of children.flat()) {
            if (c === null || c === undefined || c === false)
                continue;
            e.append(c instanceof Node ? c : document.createTextNode(String(c)));
        }
        return e;
    }

    const SVG = "http://www.w3.org/2000/svg";
    function svg(tag, attrs, ...children) {
        const e = document.createElementNS(SVG, tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (k === "text")
                e.textContent = v;
            else if (k === "dataset")
                Object.assign(e.dataset, v);
            else
                e.setAttribute(k, v);
        }
        for (const c of children.flat())
            if (c)
                e.append(c);
        return e;
    }

    /* ---- formatting ---- */

    const pad = n => String(n).padStart(2, "0");

    /* Local time, "2024-05-01 12:00:03". */
    function localTime(usec) {
        const d = new Date(usec / 1000);
        return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    }

    /* The two largest units, if adjacent: "4m 12s", "1h 5m", "2d 3h", "45s". */
    function duration(usec) {
        const s = Math.max(0, Math.round(usec / 1e6));
        if (s === 0)
            return "0s";
        const units = [["w", 604800], ["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
        for (let i = 0; i < units.length; i++) {
            const [u, size] = units[i];
            if (s < size)
                continue;
            const a = Math.floor(s / size);
            const next = units[i + 1];
            const b = next ? Math.floor((s % size) / next[1]) : 0;
            return b ? `${a}${u} ${b}${next[0]}` : `${a}${u}`;
        }
        return s + "s";
    }

    function ago(usec, now) {
        const d = now - usec;
        if (d < 5e6)
            return _("just now");
        return cockpit.format(_("$0 ago"), duration(d));
    }

    /* "2h 30m", "1d", "90s", "1w 2d" (as in jailwarden.toml) to µs; null if not. */
    function parseDuration(text) {
        const t = text.trim().toLowerCase();
        if (/^\d+$/.test(t))
            return Number(t) * 1e6;
        if (!/^(\d+\s*[smhdw]\s*)+$/.test(t))
            return null;
        const size = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
        let total = 0;
        for (const m of t.matchAll(/(\d+)\s*([smhdw])/g))
            total += Number(m[1]) * size[m[2]];
        return total * 1e6;
    }

    /* Sort addresses numerically: IPv4 before IPv6, then by value. */
    function addressKey(a) {
        const bare = a.split("/")[0];
        if (bare.includes(":")) {
            const halves = bare.split("::");
            const head = halves[0] ? halves[0].split(":") : [];
            const tail = halves.length > 1 && halves[1] ? halves[1].split(":") : [];
            const groups = head.concat(Array(8 - head.length - tail.length).fill("0"), tail);
            return "6" + groups.map(g => g.padStart(4, "0")).join("");
        }
        return "4" + bare.split(".").map(o => o.padStart(3, "0")).join("");
    }

    /* What the daemon's errors mean to a person; its own message is kept
     * where it says more (which range, which configuration problem). */
    function explain(ex) {
        const name = ex && ex.name ? ex.name : "";
        const msg = ex && ex.message ? ex.message : cockpit.message(ex);
        const short = name.replace(/^org\.jailwarden1\.Error\./, "").replace(/^org\.freedesktop\.DBus\.Error\./, "");
        const why = {
            AccessDenied: _("Not permitted: changing bans needs administrative access (root, or polkit's org.jailwarden1.manage)."),
            IgnoredAddress: _("This address is in the jail's ignoreip list, or is this host's own address: it is never banned there."),
            NoSuchJail: _("No such jail (a reload may have removed it)."),
            NotBanned: _("Not banned (any more)."),
            InvalidDuration: _("A ban lasts from 1 second to 100 years, or is permanent."),
            ShuttingDown: _("jailwarden is stopping."),
        }[short];
        if (why)
            return why;
        if (short === "Config")
            return _("The configuration has problems; the running one stays.") + "\n" + msg;
        return msg;
    }

    function showError(id, ex) {
        const p = $(id);
        if (!ex) {
            p.hidden = true;
            p.textContent = "";
            return;
        }
        p.textContent = typeof ex === "string" ? ex : explain(ex);
        p.dataset.error = ex && ex.name ? ex.name : "";
        p.hidden = false;
    }

    /* ---- state ---- */

    const state = {
        running: null,
        client: null,
        manager: null,
        jailProxies: null,
        /* key "jail\naddress" → {jail, address, banned_at, expires_at, failures, ...more keys} */
        bans: new Map(),
        clockOffset: 0,
        admin: false,
        sort: { key: "since", dir: -1 },
        search: "",
        jailFilter: "",
        selected: new Set(),
        feed: [],
        range: "24h",
        chart: null,
        historyAddress: null,
    };

    const serverNow = () => Date.now() * 1000 + state.clockOffset;
    /* origin: "" for this host's bans, else the fleet host that decided it
     * (a remote ban, in the fleet sets: lifted with UnbanRemote). */
    const banKey = (jail, address, origin) => (origin || "") + "\n" + jail + "\n" + address;
    const keyOf = b => banKey(b.jail, b.address, b.origin);

    /* Columns of the bans table. A new column (the fleet's origin, say) is
     * one entry here (and a field of ListBansPaged's rows). */
    const BAN_COLUMNS = [
        {
            key: "address",
            label: _("Address"),
            sort: b => addressKey(b.address),
            cell: b => el("button", {
                type: "button",
                class: "jw-link jw-address",
                title: _("History of this address"),
                onclick: () => openHistory(b.address),
                text: b.address,
            }),
        },
        { key: "jail", label: _("Jail"), sort: b => b.jail, cell: b => b.jail },
        {
            key: "origin",
            label: _("Origin"),
            sort: b => b.origin || "",
            cell: b => b.origin
                ? el("span", { class: "jw-origin", title: _("Decided by this fleet host"), text: b.origin })
                : el("span", { class: "jw-dim", title: _("Decided on this host"), text: _("local") }),
        },
        {
            key: "since",
            label: _("Since"),
            sort: b => b.banned_at,
            cell: (b, now) => el("span", { title: localTime(b.banned_at), text: ago(b.banned_at, now) }),
            live: true,
        },
        {
            key: "left",
            label: _("Time left"),
            sort: b => b.expires_at || Infinity,
            cell: (b, now) => timeLeft(b, now),
            live: true,
        },
        { key: "failures", label: _("Failures"), num: true, sort: b => b.failures, cell: b => b.failures ? String(b.failures) : b.origin ? el("span", { class: "jw-dim", text: "—" }) : el("span", { class: "jw-dim", title: _("Banned by hand"), text: _("by hand") }) },
    ];

    function timeLeft(b, now) {
        if (!b.expires_at)
            return el("span", { class: "jw-permanent", text: _("permanent") });
        const left = b.expires_at - now;
        if (left <= 0)
            return el("span", { class: "jw-dim", text: _("expiring") });
        return el("span", { title: localTime(b.expires_at), text: duration(left) });
    }

    /* ---- daemon presence ----
     * Calls name their signature ("type"), so the bridge need not
     * introspect the peer first (a bus may refuse introspection). */

    const bus = cockpit.dbus(null, { bus: "system" });

    function watchDaemon() {
        bus.subscribe({
            name: "org.freedesktop.DBus",
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member: "NameOwnerChanged",
            arg0: NAME,
        }, (path, iface, member, args) => {
            const owner = args[2];
            if (owner)
                connect();
            else
                disconnected(null);
        });
        bus.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", [NAME],
                 { name: "org.freedesktop.DBus", type: "s" })
                .then(([has]) => has ? connect() : disconnected(null))
                .catch(ex => {
                    setState("stopped", _("Cannot reach the system bus"));
                    showError("page-error", ex);
                });
    }

    function setState(s, text) {
        const e = $("daemon-state");
        e.dataset.state = s;
        e.textContent = text;
        $("app").setAttribute("aria-busy", "false");
    }

    function connect() {
        if (state.client)
            return;
        const client = cockpit.dbus(NAME, { bus: "system", superuser: "try" });
        state.client = client;
        client.addEventListener("close", (ev, opts) => {
            if (state.client === client)
                disconnected(opts && opts.problem && opts.problem !== "not-found" ? cockpit.message(opts) : null);
        });
        client.addEventListener("owner", (ev, owner) => {
            if (owner === null && state.client === client)
                disconnected(null);
        });
        const manager = client.proxy(MANAGER, PATH);
        state.manager = manager;
        manager.addEventListener("changed", renderSummary);
        manager.addEventListener("Banned", (ev, jail, address, expires, failures) => onBanned(jail, address, expires, failures));
        manager.addEventListener("Unbanned", (ev, jail, address, reason) => onUnbanned(jail, address, reason));
        manager.addEventListener("RemoteBanned", (ev, origin, jail, address, expires) => onRemoteBanned(origin, jail, address, expires));
        manager.addEventListener("RemoteUnbanned", (ev, origin, jail, address, reason) => onUnbanned(jail, address, reason, origin));
        manager.addEventListener("Reloaded", (ev, jails) => onReloaded(jails));
        const jails = client.proxies(JAIL, PATH);
        state.jailProxies = jails;
        jails.addEventListener("added", scheduleJails);
        jails.addEventListener("changed", scheduleJails);
        jails.addEventListener("removed", scheduleJails);
        manager.wait().then(() => {
            if (state.client !== client)
                return;
            if (!manager.valid) {
                disconnected(_("jailwarden does not answer on the system bus"));
                return;
            }
            state.running = true;
            setState("running", _("Running"));
            $("not-running").hidden = true;
            for (const e of document.querySelectorAll(".running-only"))
                e.hidden = false;
            $("summary").hidden = false;
            updateAccess();
            showError("page-error", null);
            if (state.wasStopped)
                addFeed({ kind: "daemon", text: _("jailwarden is running again") });
            state.wasStopped = false;
            renderSummary();
            loadBans();
            loadChart();
        });
        jails.wait(scheduleJails);
    }

    function disconnected(problem) {
        const client = state.client;
        state.client = null;
        state.manager = null;
        state.jailProxies = null;
        if (client)
            client.close();
        if (state.running)
            addFeed({ kind: "daemon", text: _("jailwarden stopped") });
        state.wasStopped = state.wasStopped || state.running === true;
        state.running = false;
        state.bans.clear();
        state.selected.clear();
        setState("stopped", _("Not running"));
        for (const e of document.querySelectorAll(".running-only"))
            e.hidden = true;
        $("summary").hidden = true;
        updateAccess();
        $("backend-warning").hidden = true;
        $("not-running").hidden = false;
        if (problem)
            showError("page-error", problem);
        unitStatus();
        closeHistory();
    }

    /* The systemd unit's state, when the daemon is not running. */
    let systemd = null;
    function unitStatus() {
        const p = $("unit-status");
        if (!systemd) {
            systemd = cockpit.dbus("org.freedesktop.systemd1", { bus: "system", superuser: "try" });
            systemd.addEventListener("close", () => { systemd = null });
        }
        const client = systemd;
        client.call("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "LoadUnit", [UNIT], { type: "s" })
                .then(([path]) => {
                    const unit = client.proxy("org.freedesktop.systemd1.Unit", path);
                    const service = client.proxy("org.freedesktop.systemd1.Service", path);
                    return Promise.all([unit.wait(), service.wait()]).then(() => {
                        const parts = [`${UNIT}: ${unit.ActiveState || "?"} (${unit.SubState || "?"})`];
                        if (unit.LoadState && unit.LoadState !== "loaded")
                            parts.push(cockpit.format(_("unit $0"), unit.LoadState));
                        if (service.Result && service.Result !== "success")
                            parts.push(cockpit.format(_("result: $0"), service.Result));
                        if (service.ExecMainStatus)
                            parts.push(cockpit.format(_("exit status $0$1"), service.ExecMainStatus,
                                                      service.ExecMainStatus === 2 ? _(" (a configuration problem: run jailwarden check-config)") : ""));
                        if (unit.StateChangeTimestamp)
                            parts.push(cockpit.format(_("since $0"), localTime(unit.StateChangeTimestamp)));
                        if (unit.UnitFileState)
                            parts.push(unit.UnitFileState);
                        p.textContent = parts.join(", ");
                        p.dataset.active = unit.ActiveState || "";
                    });
                })
                .catch(ex => {
                    p.textContent = ex && ex.problem === "not-found"
                        ? _("systemd is not running on this system bus: the service's state is not known.")
                        : cockpit.format(_("The state of $0 is not known: $1"), UNIT, cockpit.message(ex));
                    p.dataset.active = "unknown";
                });
    }

    $("unit-start").addEventListener("click", () => {
        const client = cockpit.dbus("org.freedesktop.systemd1", { bus: "system", superuser: "require" });
        client.call("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "StartUnit", [UNIT, "replace"], { type: "ss" })
                .then(() => showError("page-error", null))
                .catch(ex => showError("page-error", ex))
                .finally(() => { client.close(); window.setTimeout(unitStatus, 1000) });
    });

    $("unit-logs").addEventListener("click", () => {
        cockpit.jump("/system/logs#/?priority=info&service=" + encodeURIComponent(UNIT));
    });

    /* ---- administrative access ---- */

    const permission = cockpit.permission({ admin: true });
    function updateAccess() {
        state.admin = permission.allowed === true;
        for (const e of document.querySelectorAll(".admin-only"))
            e.hidden = !state.admin || (state.running !== true && e.closest(".running-only, .jw-actions") !== null);
        const p = $("access");
        if (permission.allowed === false) {
            p.textContent = _("Read-only: banning, unbanning and reloading need administrative access. Turn it on in Cockpit's top bar (\"Limited access\").");
            p.hidden = false;
        } else {
            p.hidden = true;
        }
        renderBans();
    }
    permission.addEventListener("changed", updateAccess);

    /* ---- header ---- */

    function renderSummary() {
        const m = state.manager;
        if (!m || !m.valid)
            return;
        $("sum-version").textContent = m.Version || "?";
        $("sum-backend").textContent = m.Backend || "?";
        $("sum-active").textContent = String(m.ActiveBans ?? "?");
        $("sum-total").textContent = String(m.TotalBans ?? "?");
        $("sum-purge").textContent = m.DbPurgeAgeUSec ? duration(m.DbPurgeAgeUSec) : "?";
        $("backend-warning").hidden = m.Backend !== "none";
        checkBanCount();
        chartNote();
    }

    $("reload").addEventListener("click", () => {
        const m = state.manager;
        if (!m)
            return;
        const b = $("reload");
        b.disabled = true;
        m.call("Reload", [], { type: "" })
                .then(() => showError("page-error", null))
                .catch(ex => showError("page-error", ex))
                .finally(() => { b.disabled = false });
    });

    /* ---- jails ---- */

    let jailsTimer = null;
    function scheduleJails() {
        if (!jailsTimer)
            jailsTimer = window.setTimeout(() => { jailsTimer = null; renderJails() }, 50);
    }

    function jailList() {
        const p = state.jailProxies;
        if (!p)
            return [];
        return Object.keys(p)
                .map(path => p[path])
                .filter(j => j && j.valid && j.Name)
                .sort((a, b) => a.Name.localeCompare(b.Name));
    }

    function limits(j) {
        const ban = j.BanTimeUSec ? cockpit.format(_("$0 ban"), duration(j.BanTimeUSec)) : _("permanent ban");
        return cockpit.format(_("$0 failures in $1 → $2"), j.MaxRetry, duration(j.FindTimeUSec), ban);
    }

    function renderJails() {
        const tbody = $("jails").tBodies[0];
        const jails = jailList();
        tbody.replaceChildren(...jails.map(j => el("tr", { dataset: { jail: j.Name }, class: j.Enabled ? "" : "jw-disabled" },
            el("th", { scope: "row", dataset: { field: "name" }, text: j.Name }),
            el("td", { dataset: { field: "enabled" } }, el("span", { class: j.Enabled ? "jw-badge jw-on" : "jw-badge jw-off", text: j.Enabled ? _("enabled") : _("disabled") })),
            el("td", { dataset: { field: "filter" }, text: j.Filter }),
            el("td", { class: "num", dataset: { field: "currently_failed" }, text: String(j.CurrentlyFailed) }),
            el("td", { class: "num", dataset: { field: "total_failed" }, text: String(j.TotalFailed) }),
            el("td", { class: "num" + (j.CurrentlyBanned ? " jw-hot" : ""), dataset: { field: "currently_banned" }, text: String(j.CurrentlyBanned) }),
            el("td", { class: "num", dataset: { field: "total_banned" }, text: String(j.TotalBanned) }),
            el("td", { dataset: { field: "limits" }, text: limits(j) }),
        )));
        /* The jail pickers: the ban form (enabled jails) and the filter. */
        const names = jails.map(j => j.Name);
        fillSelect($("ban-jail"), jails.filter(j => j.Enabled).map(j => [j.Name, j.Name]), null);
        fillSelect($("bans-jail"), [["", _("All jails")]].concat(names.map(n => [n, n])), "");
    }

    function fillSelect(select, options, keep) {
        const current = select.value;
        select.replaceChildren(...options.map(([value, label]) => el("option", { value, text: label })));
        if (options.some(([v]) => v === current))
            select.value = current;
        else if (keep !== null)
            select.value = keep;
    }

    /* ---- bans ---- */

    function banFrom(d) {
        const b = { ...d };
        b.banned_at = d.banned_at_usec;
        b.expires_at = d.expires_at_usec || 0;
        return b;
    }

    let loadingBans = null;
    function loadBans() {
        const m = state.manager;
        if (!m || loadingBans)
            return loadingBans;
        /* A page at a time (ListBansPaged): any number of bans, and no reply
         * larger than the daemon allows in one. */
        const bans = new Map();
        const page = cursor => m.call("ListBansPaged", ["", cursor, 10000], { type: "ssu" })
                .then(([now, list, next]) => {
                    state.clockOffset = now - Date.now() * 1000;
                    for (const [jail, address, at, exp, failures] of list) {
                        const b = banFrom({
                            jail, address, failures,
                            banned_at_usec: at, expires_at_usec: exp,
                        });
                        bans.set(keyOf(b), b);
                    }
                    return next === "" || next === cursor ? null : page(next);
                });
        /* The fleet's remote bans, with their origin (none without [fleet]). */
        const remote = () => !m.FleetHost
            ? null
            : m.call("ListRemoteBans", [], { type: "" }).then(([list]) => {
                for (const [origin, jail, address, at, exp] of list) {
                    const b = banFrom({
                        jail, address, failures: 0,
                        banned_at_usec: at, expires_at_usec: exp,
                    });
                    b.origin = origin;
                    bans.set(keyOf(b), b);
                }
            });
        loadingBans = page("")
                .then(remote)
                .then(() => {
                    state.bans = bans;
                    for (const k of [...state.selected])
                        if (!state.bans.has(k))
                            state.selected.delete(k);
                    renderBans();
                })
                /* A daemon gone meanwhile is not an error: the page says it stopped. */
                .catch(ex => { if (state.manager === m) showError("page-error", ex) })
                .finally(() => { loadingBans = null });
        return loadingBans;
    }

    /* Missed signals (a flood the daemon could not keep up with) show as a
     * count that differs from ActiveBans: then read them again, calmly. */
    let checkTimer = null;
    function checkBanCount() {
        window.clearTimeout(checkTimer);
        checkTimer = window.setTimeout(() => {
            const m = state.manager;
            if (m && m.valid && !loadingBans && m.ActiveBans !== localCount())
                loadBans();
        }, 3000);
    }

    /* This host's bans in the table (what ActiveBans counts). */
    function localCount() {
        let n = 0;
        for (const b of state.bans.values())
            if (!b.origin)
                n++;
        return n;
    }

    function onRemoteBanned(origin, jail, address, expires) {
        const key = banKey(jail, address, origin);
        const old = state.bans.get(key);
        state.bans.set(key, {
            jail,
            address,
            origin,
            banned_at: old ? old.banned_at : serverNow(),
            expires_at: expires,
            failures: 0,
        });
        scheduleBans();
    }

    function onBanned(jail, address, expires, failures) {
        const key = banKey(jail, address);
        const old = state.bans.get(key);
        state.bans.set(key, {
            ...(old || {}),
            jail,
            address,
            banned_at: old ? old.banned_at : serverNow(),
            expires_at: expires,
            failures: old ? old.failures : failures,
        });
        addFeed({ kind: "banned", jail, address, expires, failures });
        scheduleBans();
        /* A ban made again only gets a new end: not a new ban. */
        if (!old)
            chartAdd(jail, serverNow());
    }

    function onUnbanned(jail, address, reason, origin) {
        state.bans.delete(banKey(jail, address, origin));
        state.selected.delete(banKey(jail, address, origin));
        if (!origin)
            addFeed({ kind: "unbanned", jail, address, reason });
        scheduleBans();
        if (state.historyAddress === address)
            openHistory(address);
    }

    function onReloaded(jails) {
        addFeed({ kind: "reloaded", text: cockpit.format(_("Configuration reloaded: $0"), jails.join(", ")) });
        loadBans();
        loadChart();
    }

    let bansTimer = null;
    function scheduleBans() {
        if (!bansTimer)
            bansTimer = window.setTimeout(() => { bansTimer = null; renderBans() }, 100);
    }

    function visibleBans() {
        const q = state.search.trim().toLowerCase();
        const col = BAN_COLUMNS.find(c => c.key === state.sort.key) || BAN_COLUMNS[2];
        const list = [];
        for (const b of state.bans.values()) {
            if (state.jailFilter && b.jail !== state.jailFilter)
                continue;
            if (q && !b.address.toLowerCase().includes(q) && !b.jail.toLowerCase().includes(q))
                continue;
            list.push(b);
        }
        const dir = state.sort.dir;
        list.sort((a, b) => {
            const x = col.sort(a);
            const y = col.sort(b);
            if (x < y)
                return -dir;
            if (x > y)
                return dir;
            return a.address < b.address ? -1 : 1;
        });
        return list;
    }

    let banHeadShape = null;
    function renderBanHead() {
        /* Rebuilt only when it changes: a click on a header keeps its focus. */
        const shape = `${state.admin} ${state.sort.key} ${state.sort.dir}`;
        if (shape === banHeadShape)
            return;
        banHeadShape = shape;
        const tr = $("bans").tHead.rows[0];
        const cells = [];
        if (state.admin) {
            const all = el("input", { type: "checkbox", id: "bans-all", "aria-label": _("Select all shown") });
            all.addEventListener("change", () => {
                for (const b of visibleBans().slice(0, MAX_ROWS)) {
                    const k = keyOf(b);
                    if (all.checked)
                        state.selected.add(k);
                    else
                        state.selected.delete(k);
                }
                renderBans();
            });
            cells.push(el("th", { class: "jw-check" }, all));
        }
        for (const c of BAN_COLUMNS) {
            const active = state.sort.key === c.key;
            cells.push(el("th", {
                scope: "col",
                class: (c.num ? "num " : "") + "jw-sortable",
                "aria-sort": active ? (state.sort.dir > 0 ? "ascending" : "descending") : "none",
                dataset: { column: c.key },
            }, el("button", {
                type: "button",
                class: "jw-sort",
                onclick: () => {
                    state.sort = { key: c.key, dir: active ? -state.sort.dir : (c.key === "since" ? -1 : 1) };
                    renderBans();
                },
                text: c.label + (active ? (state.sort.dir > 0 ? " ▲" : " ▼") : ""),
            })));
        }
        if (state.admin)
            cells.push(el("th", { class: "jw-row-actions" }, el("span", { class: "jw-sr", text: _("Actions") })));
        tr.replaceChildren(...cells);
    }

    function renderBans() {
        if (!$("bans"))
            return;
        renderBanHead();
        const now = serverNow();
        const list = visibleBans();
        const shown = list.slice(0, MAX_ROWS);
        const rows = shown.map(b => {
            const key = keyOf(b);
            const cells = [];
            if (state.admin) {
                const box = el("input", { type: "checkbox", "aria-label": cockpit.format(_("Select $0"), b.address) });
                box.checked = state.selected.has(key);
                box.addEventListener("change", () => {
                    if (box.checked)
                        state.selected.add(key);
                    else
                        state.selected.delete(key);
                    renderSelection();
                });
                cells.push(el("td", { class: "jw-check" }, box));
            }
            for (const c of BAN_COLUMNS)
                cells.push(el("td", { class: c.num ? "num" : "", dataset: { field: c.key } }, c.cell(b, now)));
            if (state.admin) {
                cells.push(el("td", { class: "jw-row-actions" },
                              el("button", {
                                  type: "button",
                                  class: "jw-btn jw-btn-small jw-btn-danger-outline jw-unban",
                                  onclick: ev => unban([key], ev.target),
                                  text: _("Unban"),
                              })));
            }
            return el("tr", { dataset: { jail: b.jail, address: b.address, origin: b.origin || "" } }, cells);
        });
        $("bans").tBodies[0].replaceChildren(...rows);
        $("bans-count").textContent = state.bans.size ? `(${state.bans.size})` : "";
        $("bans-empty").hidden = state.bans.size > 0;
        $("bans-empty").textContent = state.bans.size ? "" : _("No bans in force.");
        const more = $("bans-more");
        if (list.length > shown.length) {
            more.textContent = cockpit.format(_("Showing $0 of $1 matching bans: search to narrow them down."), shown.length, list.length);
            more.hidden = false;
        } else if (!list.length && state.bans.size) {
            more.textContent = _("No ban matches the search.");
            more.hidden = false;
        } else {
            more.hidden = true;
        }
        renderSelection();
    }

    function renderSelection() {
        const n = state.selected.size;
        const b = $("unban-selected");
        b.disabled = n === 0;
        b.textContent = n ? cockpit.format(_("Unban selected ($0)"), n) : _("Unban selected");
    }

    /* Every second: counters only, not the whole table. */
    window.setInterval(() => {
        if (!state.running)
            return;
        const now = serverNow();
        for (const tr of $("bans").tBodies[0].rows) {
            const b = state.bans.get(banKey(tr.dataset.jail, tr.dataset.address, tr.dataset.origin));
            if (!b)
                continue;
            for (const c of BAN_COLUMNS.filter(c => c.live)) {
                const td = tr.querySelector(`td[data-field="${c.key}"]`);
                if (td)
                    td.replaceChildren(c.cell(b, now));
            }
        }
    }, 1000);

    $("bans-search").addEventListener("input", ev => { state.search = ev.target.value; scheduleBans() });
    $("bans-jail").addEventListener("change", ev => { state.jailFilter = ev.target.value; renderBans() });
    $("unban-selected").addEventListener("click", ev => unban([...state.selected], ev.target));

    /* Lift bans; the Unbanned (RemoteUnbanned) signals take them off the table. */
    function unban(keys, button) {
        const m = state.manager;
        if (!m || !keys.length)
            return;
        if (button)
            button.disabled = true;
        showError("unban-error", null);
        const failures = [];
        let chain = Promise.resolve();
        for (const k of keys) {
            const [origin, jail, address] = k.split("\n");
            /* A remote ban: lifted here only (local bans stay), for every
             * jail of its origin that banned the address. */
            const call = () => origin
                ? m.call("UnbanRemote", [origin, address], { type: "ss" })
                : m.call("Unban", [jail, address], { type: "ss" });
            chain = chain.then(() => call()
                    .then(() => state.selected.delete(k))
                    .catch(ex => failures.push([address, ex])));
        }
        return chain.then(() => {
            if (button)
                button.disabled = false;
            if (failures.length) {
                const [address, ex] = failures[0];
                showError("unban-error", cockpit.format(_("$0: $1"), address, explain(ex)) +
                          (failures.length > 1 ? cockpit.format(_(" (and $0 more)"), failures.length - 1) : ""));
                $("unban-error").dataset.error = ex.name || "";
            }
            renderSelection();
        });
    }

    /* ---- the ban form ---- */

    $("ban-duration").addEventListener("change", ev => {
        $("ban-custom-label").hidden = ev.target.value !== "custom";
    });

    $("ban-form").addEventListener("submit", ev => {
        ev.preventDefault();
        const m = state.manager;
        if (!m)
            return;
        const jail = $("ban-jail").value;
        const address = $("ban-address").value.trim();
        const choice = $("ban-duration").value;
        let usec;
        if (choice === "permanent") {
            usec = PERMANENT_USEC;
        } else if (choice === "custom") {
            usec = parseDuration($("ban-custom").value);
            if (usec === null) {
                showError("ban-error", _("Durations are like 30m, 2h 30m, 1d or 1w."));
                return;
            }
        } else {
            usec = Number(choice);
        }
        const submit = $("ban-submit");
        submit.disabled = true;
        showError("ban-error", null);
        m.call("Ban", [jail, address, usec], { type: "sst" })
                .then(() => { $("ban-address").value = "" })
                .catch(ex => showError("ban-error", ex))
                .finally(() => { submit.disabled = false });
    });

    /* ---- live feed ---- */

    function addFeed(e) {
        e.at = serverNow();
        state.feed.unshift(e);
        if (state.feed.length > FEED_MAX)
            state.feed.length = FEED_MAX;
        scheduleFeed();
    }

    let feedTimer = null;
    function scheduleFeed() {
        if (!feedTimer)
            feedTimer = window.setTimeout(() => { feedTimer = null; renderFeed() }, 100);
    }

    function renderFeed() {
        const items = state.feed.map(e => {
            let badge;
            let text;
            if (e.kind === "banned") {
                badge = _("Banned");
                const how = e.expires ? cockpit.format(_("for $0"), duration(e.expires - e.at)) : _("permanently");
                const why = e.failures ? cockpit.format(_("after $0 failures"), e.failures) : _("by hand");
                text = cockpit.format("$0 · $1 · $2, $3", e.address, e.jail, how, why);
            } else if (e.kind === "unbanned") {
                badge = _("Unbanned");
                text = cockpit.format("$0 · $1 · $2", e.address, e.jail, e.reason);
            } else if (e.kind === "reloaded") {
                badge = _("Reloaded");
                text = e.text;
            } else {
                badge = _("Daemon");
                text = e.text;
            }
            return el("li", { class: "jw-event jw-event-" + e.kind, dataset: { kind: e.kind, address: e.address || "" } },
                      el("time", { datetime: new Date(e.at / 1000).toISOString(), text: localTime(e.at).slice(11) }),
                      el("span", { class: "jw-badge jw-kind-" + e.kind, text: badge }),
                      el("span", { class: "jw-event-text", text }));
        });
        $("feed").replaceChildren(...items);
        $("feed-empty").hidden = items.length > 0;
    }

    /* ---- chart ---- */

    const PALETTE = ["#0066cc", "#c9190b", "#3e8635", "#f0ab00", "#8476d1", "#009596", "#ec7a08", "#6a6e73", "#a30000", "#5752d1"];

    function range() {
        const now = new Date(serverNow() / 1000);
        if (state.range === "30d") {
            const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate());
            return { since: midnight.getTime() * 1000 - 29 * DAY, bucket: DAY, buckets: 30 };
        }
        const hour = new Date(now.getFullYear(), now.getMonth(), now.getDate(), now.getHours());
        return { since: hour.getTime() * 1000 - 23 * HOUR, bucket: HOUR, buckets: 24 };
    }

    let chartSeq = 0;
    function loadChart() {
        const m = state.manager;
        if (!m)
            return;
        const r = range();
        const seq = ++chartSeq;
        m.call("BanHistogram", ["", r.since, r.bucket, r.buckets], { type: "sttu" })
                .then(([counts]) => {
                    if (seq !== chartSeq)
                        return;
                    state.chart = { ...r, counts: counts.map(([jail, bucket, count]) => ({ jail, bucket, count })) };
                    renderChart();
                })
                .catch(ex => showError("page-error", ex));
    }

    /* A ban seen live counts at once; the next load corrects any drift. */
    function chartAdd(jail, at) {
        const c = state.chart;
        if (!c)
            return;
        const bucket = Math.floor((at - c.since) / c.bucket);
        if (bucket < 0)
            return;
        if (bucket >= c.buckets) {
            loadChart();
            return;
        }
        const hit = c.counts.find(x => x.jail === jail && x.bucket === bucket);
        if (hit)
            hit.count += 1;
        else
            c.counts.push({ jail, bucket, count: 1 });
        scheduleChart();
    }

    let chartTimer = null;
    function scheduleChart() {
        if (!chartTimer)
            chartTimer = window.setTimeout(() => { chartTimer = null; renderChart() }, 250);
    }

    /* Nice axis maxima: 1, 2, 5, 10, 20, 50... */
    function niceMax(n) {
        if (n <= 4)
            return Math.max(n, 1);
        const p = Math.pow(10, Math.floor(Math.log10(n)));
        for (const f of [1, 2, 2.5, 5, 10])
            if (f * p >= n)
                return f * p;
        return 10 * p;
    }

    function renderChart() {
        const c = state.chart;
        const root = $("chart");
        if (!c) {
            root.replaceChildren();
            return;
        }
        const W = 640;
        const H = 240;
        const left = 40;
        const right = 8;
        const top = 10;
        const bottom = 28;
        const plotW = W - left - right;
        const plotH = H - top - bottom;
        const jails = [...new Set(c.counts.map(x => x.jail))].sort();
        const colour = j => PALETTE[jails.indexOf(j) % PALETTE.length];
        const totals = new Array(c.buckets).fill(0);
        for (const x of c.counts)
            if (x.bucket < c.buckets)
                totals[x.bucket] += x.count;
        const max = niceMax(Math.max(0, ...totals));
        const bw = plotW / c.buckets;
        const y = v => top + plotH - (v / max) * plotH;
        const parts = [];
        /* Before dbpurgeage, history is gone: shade it. */
        const m = state.manager;
        const kept = m && m.valid && m.DbPurgeAgeUSec ? serverNow() - m.DbPurgeAgeUSec : null;
        if (kept !== null && kept > c.since) {
            const upto = Math.min(c.buckets, (kept - c.since) / c.bucket);
            parts.push(svg("rect", { class: "jw-purged", x: left, y: top, width: upto * bw, height: plotH },
                           svg("title", { text: _("No history kept this far back (dbpurgeage)") })));
        }
        for (const v of [0, max / 2, max]) {
            parts.push(svg("line", { class: "jw-grid-line", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
            parts.push(svg("text", { class: "jw-axis", x: left - 6, y: y(v) + 4, "text-anchor": "end", text: String(Math.round(v * 10) / 10) }));
        }
        const stack = new Array(c.buckets).fill(0);
        const ordered = c.counts.filter(x => x.bucket < c.buckets)
                .sort((a, b) => a.bucket - b.bucket || jails.indexOf(a.jail) - jails.indexOf(b.jail));
        for (const x of ordered) {
            const y0 = y(stack[x.bucket]);
            stack[x.bucket] += x.count;
            const y1 = y(stack[x.bucket]);
            const start = c.since + x.bucket * c.bucket;
            const label = state.range === "30d"
                ? localTime(start).slice(0, 10)
                : localTime(start).slice(11, 16) + "–" + localTime(start + c.bucket).slice(11, 16);
            parts.push(svg("rect", {
                class: "jw-bar",
                x: left + x.bucket * bw + 1,
                y: y1,
                width: Math.max(1, bw - 2),
                height: Math.max(0, y0 - y1),
                fill: colour(x.jail),
                dataset: { jail: x.jail, bucket: String(x.bucket), count: String(x.count), start: String(start) },
            }, svg("title", { text: cockpit.format(_("$0: $1 bans, $2"), x.jail, x.count, label) })));
        }
        /* Time labels. */
        const every = state.range === "30d" ? 5 : 4;
        for (let i = 0; i < c.buckets; i += every) {
            const start = c.since + i * c.bucket;
            const text = state.range === "30d" ? localTime(start).slice(5, 10) : localTime(start).slice(11, 16);
            parts.push(svg("text", { class: "jw-axis", x: left + i * bw + bw / 2, y: H - 10, "text-anchor": "middle", text }));
        }
        parts.push(svg("line", { class: "jw-axis-line", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
        root.replaceChildren(...parts);
        root.setAttribute("aria-label", state.range === "30d"
            ? _("Bans started per day over 30 days, per jail")
            : _("Bans started per hour over 24 hours, per jail"));
        root.dataset.total = String(totals.reduce((a, b) => a + b, 0));
        $("chart-legend").replaceChildren(...jails.map(j => el("li", { dataset: { jail: j } },
            el("span", { class: "jw-swatch", style: null, dataset: { colour: colour(j) } }), j)));
        for (const s of $("chart-legend").querySelectorAll(".jw-swatch"))
            s.style.backgroundColor = s.dataset.colour;
        if (!jails.length)
            $("chart-legend").replaceChildren(el("li", { class: "jw-dim", text: _("No bans in this period.") }));
        chartNote();
    }

    function chartNote() {
        const note = $("chart-note");
        const m = state.manager;
        const c = state.chart;
        if (!m || !m.valid || !c || !m.DbPurgeAgeUSec) {
            note.hidden = true;
            return;
        }
        const span = c.bucket * c.buckets;
        if (m.DbPurgeAgeUSec >= span) {
            note.hidden = true;
            return;
        }
        note.textContent = cockpit.format(_("The ban history is kept for $0 (dbpurgeage): the shaded part has none. Raise dbpurgeage in [daemon] of jailwarden.toml to see further back."), duration(m.DbPurgeAgeUSec));
        note.hidden = false;
    }

    for (const b of document.querySelectorAll(".jw-seg")) {
        b.addEventListener("click", () => {
            state.range = b.dataset.range;
            for (const o of document.querySelectorAll(".jw-seg"))
                o.setAttribute("aria-pressed", String(o === b));
            loadChart();
        });
    }

    /* Buckets move on: reload when the current one is over. */
    window.setInterval(() => {
        const c = state.chart;
        if (state.running && c && serverNow() >= c.since + c.buckets * c.bucket)
            loadChart();
    }, 30000);

    /* ---- per-address history ---- */

    function openHistory(address) {
        const m = state.manager;
        if (!m)
            return;
        state.historyAddress = address;
        $("history-title").textContent = cockpit.format(_("History of $0"), address);
        $("history-panel").hidden = false;
        showError("history-error", null);
        const logs = $("history-logs");
        logs.href = "#";
        m.call("History", ["", address, 0, 200], { type: "sstu" })
                .then(([rows]) => {
                    if (state.historyAddress !== address)
                        return;
                    const now = serverNow();
                    $("history").tBodies[0].replaceChildren(...rows.map(([jail, , at, ended, failures, reason]) =>
                        el("tr", { dataset: { jail, ended: String(ended), reason } },
                           el("td", { text: jail }),
                           el("td", { text: localTime(at) }),
                           el("td", { text: ended ? localTime(ended) : _("in force") }),
                           el("td", { text: duration((ended || now) - at) + (ended ? "" : _(" so far")) }),
                           el("td", { class: "num", text: failures ? String(failures) : _("by hand") }),
                           el("td", { text: ended ? reason : "" }))));
                    const inForce = rows.filter(r => !r[3]).length;
                    const first = rows.length ? rows[rows.length - 1][2] : null;
                    $("history-summary").textContent = rows.length
                        ? cockpit.format(_("$0 bans since $1 ($2 in force), as far back as the history is kept."), rows.length, localTime(first), inForce)
                        : _("No bans of this address in the history.");
                    /* The journal has every ban and unban, with JAILWARDEN_ADDRESS. */
                    let url = "/system/logs#/?priority=info&JAILWARDEN_ADDRESS=" + encodeURIComponent(address);
                    if (first)
                        url += "&since=" + encodeURIComponent(localTime(first - 60e6));
                    logs.href = url;
                    logs.dataset.location = url;
                    const banned = [...state.bans.values()].filter(b => b.address === address);
                    const unbanButton = $("history-unban");
                    unbanButton.hidden = !state.admin || !banned.length;
                    unbanButton.onclick = () => unban(banned.map(keyOf), unbanButton);
                })
                .catch(ex => showError("history-error", ex));
    }

    function closeHistory() {
        state.historyAddress = null;
        $("history-panel").hidden = true;
    }

    $("history-close").addEventListener("click", closeHistory);
    $("history-panel").addEventListener("click", ev => { if (ev.target === $("history-panel")) closeHistory() });
    document.addEventListener("keydown", ev => { if (ev.key === "Escape") closeHistory() });
    $("history-logs").addEventListener("click", ev => {
        ev.preventDefault();
        const url = ev.currentTarget.dataset.location;
        if (url)
            cockpit.jump(url);
    });

    /* ---- theme: follow Cockpit's light/dark choice ---- */

    function applyTheme() {
        let style = null;
        try {
            style = window.localStorage.getItem("shell:style");
        } catch (e) { }
        const dark = style === "dark" ||
            ((style === null || style === "auto") && window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
        document.documentElement.classList.toggle("jw-dark", !!dark);
    }
    window.addEventListener("storage", ev => { if (ev.key === "shell:style") applyTheme() });
    if (window.matchMedia)
        window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);

    /* ---- start ---- */

    function start() {
        applyTheme();
        updateAccess();
        renderFeed();
        watchDaemon();
        cockpit.transport.wait(() => {});
    }

    if (document.readyState === "loading")
        document.addEventListener("DOMContentLoaded", start);
    else
        start();
}());
