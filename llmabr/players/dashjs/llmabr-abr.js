/**
 * LLM-ABR for dash.js v5: a custom quality-switch rule that runs an exported LLM-ABR policy.
 *
 *   import { attachLlmAbr } from 'llmabr-dashjs';
 *   const abr = attachLlmAbr(player, { model: 'policy.onnx', layout: 'layout.json' });
 *   await abr.ready;                       // optional: decide with the model from the 2nd segment
 *   player.initialize(video, 'manifest.mpd', true);
 *
 * How it works. dash.js asks quality-switch rules synchronously (getSwitchRequest) right before
 * it requests the next media segment, but onnxruntime-web's session.run is asynchronous. So the
 * decision for segment i+1 is computed as soon as segment i has downloaded
 * (FRAGMENT_LOADING_COMPLETED): the plugin appends segment i to its history, builds the
 * measurement row in the order and units that layout.json names (the same row the policy saw in
 * the simulator), runs the model, and caches argmax(logits). The rule answers from that cache.
 * Until the model is loaded (or if it failed to load) a simple throughput rule answers instead.
 *
 * Everything the plugin decides is recorded on `abr.log` (also `window.llmabrLog` by default):
 * every decision (row, logits, level, milliseconds inside session.run, milliseconds from the
 * download to the cached decision) and every video segment
 * (bitrate, bytes, download time, buffer, stall, and which decision chose it).
 *
 * Only video is adapted; audio and text keep dash.js's defaults.
 */

const RULE_NAME = 'LlmAbrRule';
const SUPPORTED_LAYOUT_VERSIONS = [1];
const HISTORY_FIELDS = ['bitrate_kbps', 'buffer_s', 'download_time_s', 'chunk_bytes', 'rebuffer_s', 'valid'];
const LEVEL_FIELDS = ['next_chunk_bytes', 'ladder_kbps'];
const SCALAR_FIELDS = ['chunks_left', 'chunks_total'];
const WARMUP_RUNS = 3;
// dash.js v5's built-in quality and abandon rules; all are switched off so that only this rule
// decides (abandonment would cut a segment short, which the simulator never does).
const BUILT_IN_RULES = ['throughputRule', 'bolaRule', 'insufficientBufferRule', 'switchHistoryRule',
    'droppedFramesRule', 'abandonRequestsRule', 'l2ARule', 'loLPRule'];

export { RULE_NAME };

/**
 * Register the LLM-ABR rule on a dash.js v5 player. Call before player.initialize().
 *
 * @param {object} player  a dashjs.MediaPlayer() instance (created, not yet initialized)
 * @param {object} options
 * @param {string} options.model         URL of policy.onnx (input `obs` [batch, size], output `logits`)
 * @param {string} options.layout        URL of layout.json written next to it by `llmabr export`
 * @param {string} [options.segmentSizes] URL of a JSON segment-size table
 *        {"chunk_bytes": [[bytes of segment 0, 1, ...] for the lowest level, ..., highest level]};
 *        without it the next segment's size at each level is bandwidth x segment duration / 8
 * @param {object} [options.dashjs]       the dashjs namespace (default: globalThis.dashjs)
 * @param {object} [options.ort]          an onnxruntime-web module (default: globalThis.ort, else
 *        `import('onnxruntime-web/wasm')`, resolved by your bundler or an import map)
 * @param {string|object} [options.wasmPaths] where ort-wasm-*.wasm is served (ort.env.wasm.wasmPaths)
 * @param {boolean} [options.configurePlayer=true] switch off dash.js's built-in ABR rules and fast
 *        switching (the policy was trained without either)
 * @param {number} [options.fallbackSafety=0.9] the throughput rule picks the highest bitrate below
 *        this fraction of the harmonic-mean throughput of the last 5 segments
 * @param {string|null} [options.globalLog='llmabrLog'] also expose the log as globalThis[name]
 * @returns {{ready: Promise<void>, log: object, summary: function(): object, detach: function(): void,
 *            session: object|null, ort: object|null}}
 */
export function attachLlmAbr(player, options = {}) {
    if (!player || typeof player.addABRCustomRule !== 'function') {
        throw new TypeError('attachLlmAbr: the first argument must be a dash.js v5 MediaPlayer instance');
    }
    if (!options.model || !options.layout) {
        throw new TypeError("attachLlmAbr: options.model (policy.onnx URL) and options.layout (layout.json URL) are required");
    }
    const dashjs = options.dashjs || globalThis.dashjs;
    if (!dashjs || !dashjs.FactoryMaker || !dashjs.MediaPlayer) {
        throw new Error('attachLlmAbr: dash.js v5 not found; load dash.all.min.js first or pass options.dashjs');
    }
    const events = dashjs.MediaPlayer.events;
    const fallbackSafety = options.fallbackSafety ?? 0.9;

    const log = {
        rule: RULE_NAME,
        modelUrl: options.model,
        layoutUrl: options.layout,
        segmentSizesUrl: options.segmentSizes || null,
        ready: false,
        error: null,
        warnings: [],
        loadMs: null,    // fetch layout + model, create the session, one warm-up run
        warmupMs: null,  // that first session.run
        layout: null,
        ladderKbps: null,
        chunksTotal: null,
        crossOriginIsolated: Boolean(globalThis.crossOriginIsolated),
        decisions: [],   // one per completed segment with a next one: the model's choice for it
        segments: [],    // one per completed video media segment, in download order
        ruleCalls: 0,
        staleAnswers: 0, // rule asked while the decision for the next segment was still running
        startupS: null,  // first segment request -> first frame playing
        rebufferS: 0,    // stalls after playback started
    };
    if (options.globalLog !== null) {
        globalThis[options.globalLog || 'llmabrLog'] = log;
    }

    // ---- state shared by every rule instance dash.js creates (it may create several) ----------
    let layout = null;        // parsed layout.json
    let session = null;       // onnxruntime-web InferenceSession
    let ortModule = null;
    let segmentSizes = null;  // chunk_bytes[level][segment index], or null
    const history = [];       // completed video segments, oldest first (the row uses the last K)
    const answers = new Map(); // segment index -> {level, source}: what the rule answered for it
    let nextDecision = null;  // {forSegment, level, pending, ...}: the cached decision
    let lastCompletedIndex = null;
    const loadingStartStallS = new Map(); // request url -> stall clock and time when it started
    let firstRequestMs = null;
    let stalledSinceMs = null; // non-null while the player waits for data (startup included)
    let stallTotalS = 0;
    let playingOnce = false;

    function warn(message) {
        log.warnings.push(message);
        console.warn(`[llmabr] ${message}`);
    }

    // ---- loading --------------------------------------------------------------------------------
    async function fetchJson(url, what) {
        const response = await fetch(url);
        if (!response.ok) {
            throw new Error(`cannot load ${what} from ${url}: HTTP ${response.status}`);
        }
        try {
            return await response.json();
        } catch (error) {
            throw new Error(`${what} at ${url} is not valid JSON: ${error.message}`);
        }
    }

    function checkLayout(raw) {
        if (!SUPPORTED_LAYOUT_VERSIONS.includes(raw.layout_version)) {
            throw new Error(`layout.json has layout_version ${raw.layout_version}; this plugin reads ${SUPPORTED_LAYOUT_VERSIONS.join(', ')}`);
        }
        const known = new Set([...HISTORY_FIELDS, ...LEVEL_FIELDS, ...SCALAR_FIELDS]);
        let covered = 0;
        for (const field of raw.fields) {
            if (!known.has(field.name)) {
                throw new Error(`layout.json field '${field.name}' is unknown to this plugin; known fields: ${[...known].join(', ')}`);
            }
            const expected = HISTORY_FIELDS.includes(field.name) ? raw.history_len
                : LEVEL_FIELDS.includes(field.name) ? raw.n_levels : 1;
            if (field.size !== expected) {
                throw new Error(`layout.json field '${field.name}' has size ${field.size}, expected ${expected}`);
            }
            covered += field.size;
        }
        if (covered !== raw.size) {
            throw new Error(`layout.json fields cover ${covered} columns but size is ${raw.size}`);
        }
        return {
            ...raw,
            input: raw.input || 'obs',
            output: raw.output || 'logits',
        };
    }

    async function loadOrt() {
        if (options.ort) return options.ort;
        if (globalThis.ort && globalThis.ort.InferenceSession) return globalThis.ort;
        return await import('onnxruntime-web/wasm');
    }

    async function load() {
        const started = performance.now();
        const [rawLayout, ort, sizes] = await Promise.all([
            fetchJson(options.layout, 'layout.json'),
            loadOrt(),
            options.segmentSizes ? fetchJson(options.segmentSizes, 'the segment-size table') : null,
        ]);
        layout = checkLayout(rawLayout);
        log.layout = layout;
        if (sizes) {
            if (!Array.isArray(sizes.chunk_bytes) || sizes.chunk_bytes.length !== layout.n_levels) {
                throw new Error(`segment-size table ${options.segmentSizes} must hold chunk_bytes with one list per level (${layout.n_levels})`);
            }
            segmentSizes = sizes.chunk_bytes;
        }
        ortModule = ort;
        // One wasm thread: a decision is ~100k multiply-adds, threads would only add hand-off cost,
        // and multi-threading needs a cross-origin-isolated page.
        ort.env.wasm.numThreads = 1;
        ort.env.wasm.proxy = false;
        if (options.wasmPaths) ort.env.wasm.wasmPaths = options.wasmPaths;
        session = await ort.InferenceSession.create(options.model, {
            executionProviders: ['wasm'],
            graphOptimizationLevel: 'all',
        });
        if (!session.inputNames.includes(layout.input) || !session.outputNames.includes(layout.output)) {
            throw new Error(`policy.onnx has inputs [${session.inputNames}] and outputs [${session.outputNames}]; layout.json names '${layout.input}' -> '${layout.output}'`);
        }
        // The first runs compile and allocate (tens of ms); pay them here, not on the first decisions.
        // The row is the one a session starts from (nothing played yet, the training ladder), not
        // zeros, which would divide 0 by 0.
        const warmupStarted = performance.now();
        const warmupRow = new Float32Array(layout.size);
        for (const field of layout.fields) {
            const ladder = layout.ladder_kbps || [];
            for (let i = 0; i < field.size && i < ladder.length; i++) {
                if (field.name === 'ladder_kbps') warmupRow[field.offset + i] = ladder[i];
                if (field.name === 'next_chunk_bytes') warmupRow[field.offset + i] = ladder[i] * 125 * (layout.chunk_s || 4);
            }
            if (SCALAR_FIELDS.includes(field.name)) warmupRow[field.offset] = layout.chunks_total || 1;
        }
        for (let run = 0; run < WARMUP_RUNS; run++) {
            const warmup = await session.run({ [layout.input]: new ort.Tensor('float32', warmupRow, [1, layout.size]) });
            if (warmup[layout.output].dims[1] !== layout.n_levels) {
                throw new Error(`policy.onnx returns ${warmup[layout.output].dims[1]} logits; layout.json has ${layout.n_levels} levels`);
            }
        }
        log.warmupMs = performance.now() - warmupStarted;
        log.loadMs = performance.now() - started;
        log.ready = true;
    }

    const ready = load().catch((error) => {
        log.error = String(error && error.message ? error.message : error);
        console.error(`[llmabr] model not used, the throughput rule decides: ${log.error}`);
        throw error;
    });
    // The page may never await `ready`; the failure is on log.error and the fallback keeps playing.
    ready.catch(() => {});

    // ---- stall clock ------------------------------------------------------------------------------
    function nowMs() {
        return performance.now();
    }

    function stallClockS(atMs = nowMs()) {
        return stallTotalS + (stalledSinceMs !== null ? (atMs - stalledSinceMs) / 1000 : 0);
    }

    function onWaiting() {
        if (playingOnce && stalledSinceMs === null) stalledSinceMs = nowMs();
    }

    function onPlaying() {
        const now = nowMs();
        if (stalledSinceMs !== null) {
            const stalledS = (now - stalledSinceMs) / 1000;
            stallTotalS += stalledS;
            if (playingOnce) log.rebufferS += stalledS;
            stalledSinceMs = null;
        }
        if (!playingOnce && firstRequestMs !== null) {
            log.startupS = (now - firstRequestMs) / 1000;
        }
        playingOnce = true;
    }

    function onEnded() {
        onPlaying();
    }

    // ---- the ladder, as dash.js sees it -------------------------------------------------------
    function videoRepresentations() {
        const reps = player.getRepresentationsByType('video') || [];
        return [...reps].sort((a, b) => a.bandwidth - b.bandwidth);
    }

    function levelOf(representation, reps) {
        const index = reps.findIndex((rep) => rep.id === representation.id);
        return index;
    }

    function segmentDurationS(representation, request) {
        if (request && Number.isFinite(request.duration) && request.duration > 0) return request.duration;
        return representation.segmentDuration || layout?.chunk_s || 4;
    }

    // {total, live}: segments in the session, from the manifest duration.
    function sessionChunks(representation, durationS) {
        const info = representation.mediaInfo && representation.mediaInfo.streamInfo;
        const mediaS = info && Number.isFinite(info.duration) && info.duration > 0 ? info.duration : player.duration();
        if (!Number.isFinite(mediaS) || mediaS <= 0) {
            // Live or unknown length: there is no session end to count down to; use the training
            // episode's length so the row stays in the range the policy has seen.
            // chunks_left stays at chunks_total: a live session never nears its end.
            if (!log.warnings.some((w) => w.startsWith('no finite duration'))) {
                warn(`no finite duration in the manifest; chunks_total is layout.json's ${layout.chunks_total}`);
            }
            return { total: layout.chunks_total, live: true };
        }
        const segS = representation.segmentDuration || durationS;
        // A last segment shorter than the others still counts; the epsilon absorbs rounding of
        // durations written in a timescale.
        return { total: Math.max(1, Math.ceil(mediaS / segS - 1e-3)), live: false };
    }

    // ---- the measurement row ------------------------------------------------------------------
    function nextChunkBytes(reps, nextIndex, chunks, segS) {
        return reps.map((rep, level) => {
            if (!chunks.live && nextIndex >= chunks.total) return 0;
            if (segmentSizes && segmentSizes[level] && nextIndex < segmentSizes[level].length) {
                return segmentSizes[level][nextIndex];
            }
            return rep.bandwidth * segS / 8;
        });
    }

    function buildRow(reps, nextIndex, chunks, segS) {
        const K = layout.history_len;
        const row = new Float32Array(layout.size);
        const kept = history.slice(-K);
        const pad = K - kept.length; // older slots stay 0 with valid = 0
        const levelValues = {
            next_chunk_bytes: nextChunkBytes(reps, nextIndex, chunks, segS),
            ladder_kbps: reps.map((rep) => rep.bandwidth / 1000),
        };
        const scalarValues = {
            chunks_left: chunks.live ? chunks.total : Math.max(chunks.total - nextIndex, 0),
            chunks_total: chunks.total,
        };
        for (const field of layout.fields) {
            if (HISTORY_FIELDS.includes(field.name)) {
                kept.forEach((segment, i) => {
                    row[field.offset + pad + i] = field.name === 'valid' ? 1 : segment[field.name];
                });
            } else if (LEVEL_FIELDS.includes(field.name)) {
                levelValues[field.name].forEach((value, i) => { row[field.offset + i] = value; });
            } else {
                row[field.offset] = scalarValues[field.name];
            }
        }
        return row;
    }

    function argmax(values) {
        let best = 0;
        for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    function decide(reps, nextIndex, chunks, segS) {
        const started = nowMs();
        const row = buildRow(reps, nextIndex, chunks, segS);
        const decision = { forSegment: nextIndex, pending: true, level: null, source: 'model' };
        nextDecision = decision;
        const rowMs = nowMs() - started;
        // The model runs in a task of its own. session.run awaits inside, and from its first await
        // the rest of dash.js's handling of this event (other listeners, the append) would run in
        // the middle of the decision; a new task starts once that work is done.
        return new Promise((resolve, reject) => {
            setTimeout(() => runModel(decision, row, reps, started, rowMs).then(resolve, reject), 0);
        });
    }

    async function runModel(decision, row, reps, queuedMs, rowMs) {
        const tensorStarted = nowMs();
        const tensor = new ortModule.Tensor('float32', row, [1, layout.size]);
        const runStarted = nowMs();
        const outputs = await session.run({ [layout.input]: tensor });
        const runMs = nowMs() - runStarted;
        const logits = Array.from(outputs[layout.output].data);
        decision.level = argmax(logits);
        decision.pending = false;
        const done = nowMs();
        log.decisions.push({
            forSegment: decision.forSegment,
            row: Array.from(row),
            logits,
            level: decision.level,
            bitrateKbps: reps[decision.level].bandwidth / 1000,
            runMs,                                        // session.run alone
            decisionMs: rowMs + (done - tensorStarted),   // row + tensor + run + argmax
            readyMs: done - queuedMs,                     // segment downloaded -> decision cached
        });
    }

    // ---- the fallback: harmonic-mean throughput of the last 5 segments --------------------------
    function fallbackLevel(reps) {
        const recent = history.slice(-5);
        const inverseSum = recent.reduce((sum, s) => sum + s.download_time_s / (s.chunk_bytes * 8 / 1000), 0);
        const throughputKbps = recent.length / inverseSum;
        let level = 0;
        reps.forEach((rep, i) => { if (rep.bandwidth / 1000 <= fallbackSafety * throughputKbps) level = i; });
        return level;
    }

    // ---- dash.js events ---------------------------------------------------------------------------
    function isVideoMedia(request) {
        return request && request.mediaType === 'video' && request.type === 'MediaSegment';
    }

    function onFragmentStarted(e) {
        const request = e.request;
        if (!isVideoMedia(request)) return;
        const now = nowMs();
        if (firstRequestMs === null) {
            firstRequestMs = now;
            // Startup counts as a stall, as the simulator's first chunk rebuffers its download time.
            stalledSinceMs = now;
        }
        loadingStartStallS.set(request.url, { stallS: stallClockS(now), startedMs: now });
    }

    function onFragmentCompleted(e) {
        const request = e.request;
        if (!isVideoMedia(request) || e.error) return;
        const now = nowMs();
        const reps = videoRepresentations();
        const representation = request.representation || reps.find((rep) => rep.id === request.representationId);
        if (!representation) return;
        const level = levelOf(representation, reps);
        const started = loadingStartStallS.get(request.url) || { stallS: stallClockS(now), startedMs: now };
        loadingStartStallS.delete(request.url);
        const downloadS = request.startDate && request.endDate
            ? (request.endDate.getTime() - request.startDate.getTime()) / 1000
            : (now - started.startedMs) / 1000;
        const bytes = request.bytesLoaded > 0 ? request.bytesLoaded : (e.response ? e.response.byteLength : 0);
        const segS = segmentDurationS(representation, request);
        // The segment is not appended yet at this event; the simulator's buffer_s is the level right
        // after the chunk arrived, i.e. what is buffered now plus this segment.
        const bufferS = player.getDashMetrics().getCurrentBufferLevel('video') + segS;
        const index = Number.isFinite(request.index) ? request.index : (lastCompletedIndex ?? -1) + 1;
        const answer = answers.get(index) || null;
        answers.delete(index);
        const segment = {
            index,
            level,
            representationId: representation.id,
            bitrate_kbps: representation.bandwidth / 1000,
            buffer_s: bufferS,
            download_time_s: downloadS,
            chunk_bytes: bytes,
            rebuffer_s: Math.max(stallClockS(now) - started.stallS, 0),
            durationS: segS,
            url: request.url,
            completedMs: now,
            // 'model', 'fallback' (throughput rule), 'default' (layout.default_level, first segment)
            // or 'player' (dash.js's own initial choice, when the rule had nothing to say)
            decidedBy: answer ? answer.source : 'player',
            decidedLevel: answer ? answer.level : null,
        };
        history.push(segment);
        if (history.length > 64) history.shift(); // K is 16 in the default layout
        log.segments.push(segment);
        lastCompletedIndex = index;

        if (!layout || !session) return; // the fallback reads `history` when asked
        if (reps.length !== layout.n_levels) {
            if (!log.error) {
                log.error = `the manifest has ${reps.length} video representations but the policy has ${layout.n_levels} levels`;
                console.error(`[llmabr] ${log.error}; the throughput rule decides`);
            }
            return;
        }
        const chunks = sessionChunks(representation, segS);
        log.chunksTotal = chunks.total;
        if (!log.ladderKbps) {
            log.ladderKbps = reps.map((rep) => rep.bandwidth / 1000);
            if (layout.ladder_kbps && layout.ladder_kbps.some((kbps, i) => Math.abs(kbps - log.ladderKbps[i]) > 1e-6)) {
                warn(`the manifest ladder [${log.ladderKbps}] kbps differs from the training ladder [${layout.ladder_kbps}] kbps`);
            }
            if (layout.chunk_s && Math.abs(layout.chunk_s - segS) > 1e-3) {
                warn(`segments last ${segS} s; the policy was trained on ${layout.chunk_s} s chunks`);
            }
        }
        if (!chunks.live && index + 1 >= chunks.total) return; // the last segment: nothing left to decide
        decide(reps, index + 1, chunks, segS).catch((error) => {
            nextDecision = null;
            log.error = `session.run failed: ${error && error.message ? error.message : error}`;
            console.error(`[llmabr] ${log.error}`);
        });
    }

    // ---- the rule dash.js calls -------------------------------------------------------------------
    function LlmAbrRuleClass() {
        const context = this.context;
        const SwitchRequest = dashjs.FactoryMaker.getClassFactoryByName('SwitchRequest');

        function getSwitchRequest(rulesContext) {
            const request = SwitchRequest(context).create();
            const mediaInfo = rulesContext.getMediaInfo();
            if (!mediaInfo || rulesContext.getMediaType() !== 'video') return request;
            log.ruleCalls += 1;
            const abrController = rulesContext.getAbrController();
            const reps = [...abrController.getPossibleVoRepresentationsFilteredBySettings(mediaInfo, true)]
                .sort((a, b) => a.bandwidth - b.bandwidth);
            if (reps.length === 0) return request;
            const nextIndex = lastCompletedIndex === null ? 0 : lastCompletedIndex + 1;
            let level;
            let source;
            if (nextIndex === 0) {
                // Nothing measured yet. Training fetched the first chunk at layout.default_level
                // before the policy's first decision; without it keep dash.js's initial choice
                // (streaming.abr.initialBitrate).
                if (!layout || !Number.isInteger(layout.default_level)) return request;
                level = layout.default_level;
                source = 'default';
            } else if (nextDecision && nextDecision.forSegment === nextIndex && !nextDecision.pending) {
                level = nextDecision.level;
                source = 'model';
            } else {
                if (nextDecision && nextDecision.forSegment === nextIndex && nextDecision.pending) {
                    log.staleAnswers += 1;
                }
                level = fallbackLevel(reps);
                source = 'fallback';
            }
            level = Math.min(level, reps.length - 1);
            answers.set(nextIndex, { level, source });
            request.representation = reps[level];
            request.priority = SwitchRequest.PRIORITY.STRONG;
            request.reason = { rule: RULE_NAME, source, segment: nextIndex };
            return request;
        }

        function reset() {}

        return { getSwitchRequest, reset };
    }
    LlmAbrRuleClass.__dashjs_factory_name = RULE_NAME;
    const ruleFactory = dashjs.FactoryMaker.getClassFactory(LlmAbrRuleClass);

    if (options.configurePlayer !== false) {
        const rules = {};
        for (const name of BUILT_IN_RULES) rules[name] = { active: false };
        player.updateSettings({
            streaming: {
                abr: { rules, autoSwitchBitrate: { video: true } },
                buffer: { fastSwitchEnabled: false },
            },
        });
    }
    player.addABRCustomRule('qualitySwitchRules', RULE_NAME, ruleFactory);

    const handlers = [
        [events.FRAGMENT_LOADING_STARTED, onFragmentStarted],
        [events.FRAGMENT_LOADING_COMPLETED, onFragmentCompleted],
        [events.PLAYBACK_WAITING, onWaiting],
        [events.PLAYBACK_PLAYING, onPlaying],
        [events.PLAYBACK_ENDED, onEnded],
    ];
    for (const [event, handler] of handlers) player.on(event, handler);

    function summary() {
        const segments = log.segments;
        let switches = 0;
        for (let i = 1; i < segments.length; i++) if (segments[i].level !== segments[i - 1].level) switches += 1;
        const runMs = log.decisions.map((d) => d.runMs).sort((a, b) => a - b);
        const quantile = (q) => (runMs.length ? runMs[Math.min(runMs.length - 1, Math.ceil(q * runMs.length) - 1)] : null);
        return {
            segments: segments.length,
            bitrateKbps: segments.map((s) => s.bitrate_kbps),
            levels: segments.map((s) => s.level),
            avgBitrateKbps: segments.length ? segments.reduce((sum, s) => sum + s.bitrate_kbps, 0) / segments.length : null,
            startupS: log.startupS,
            rebufferS: log.rebufferS + (playingOnce && stalledSinceMs !== null ? (nowMs() - stalledSinceMs) / 1000 : 0),
            switches,
            decisions: log.decisions.length,
            runMsMedian: quantile(0.5),
            runMsP99: quantile(0.99),
        };
    }

    function detach() {
        for (const [event, handler] of handlers) player.off(event, handler);
        player.removeABRCustomRule(RULE_NAME);
    }

    return {
        ready,
        log,
        summary,
        detach,
        get session() { return session; }, // the onnxruntime-web InferenceSession, once loaded
        get ort() { return ortModule; },
    };
}
