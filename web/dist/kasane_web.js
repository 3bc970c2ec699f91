let wasm_bindgen = (function(exports) {
    let script_src;
    if (typeof document !== 'undefined' && document.currentScript !== null) {
        script_src = new URL(document.currentScript.src, location.href).toString();
    }

    /**
     * What a login ran, for the page (as `kasane login` reports it).
     */
    class LoginReport {
        static __wrap(ptr) {
            const obj = Object.create(LoginReport.prototype);
            obj.__wbg_ptr = ptr;
            LoginReportFinalization.register(obj, obj.__wbg_ptr, obj);
            return obj;
        }
        __destroy_into_raw() {
            const ptr = this.__wbg_ptr;
            this.__wbg_ptr = 0;
            LoginReportFinalization.unregister(this);
            return ptr;
        }
        free() {
            const ptr = this.__destroy_into_raw();
            wasm.__wbg_loginreport_free(ptr, 0);
        }
        /**
         * The challenge bundle's access counter.
         * @returns {bigint}
         */
        get counter() {
            const ret = wasm.__wbg_get_loginreport_counter(this.__wbg_ptr);
            return BigInt.asUintN(64, ret);
        }
        /**
         * The module's SHA-256, hex.
         * @returns {string}
         */
        get sha256() {
            let deferred1_0;
            let deferred1_1;
            try {
                const ret = wasm.__wbg_get_loginreport_sha256(this.__wbg_ptr);
                deferred1_0 = ret[0];
                deferred1_1 = ret[1];
                return getStringFromWasm0(ret[0], ret[1]);
            } finally {
                wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
            }
        }
        /**
         * Who signed the module's entry: `targets` (first party) or `author:<id>`.
         * @returns {string}
         */
        get signedBy() {
            let deferred1_0;
            let deferred1_1;
            try {
                const ret = wasm.__wbg_get_loginreport_signedBy(this.__wbg_ptr);
                deferred1_0 = ret[0];
                deferred1_1 = ret[1];
                return getStringFromWasm0(ret[0], ret[1]);
            } finally {
                wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
            }
        }
        /**
         * The transform's name (from the trusted registry entry).
         * @returns {string}
         */
        get transform() {
            let deferred1_0;
            let deferred1_1;
            try {
                const ret = wasm.__wbg_get_loginreport_transform(this.__wbg_ptr);
                deferred1_0 = ret[0];
                deferred1_1 = ret[1];
                return getStringFromWasm0(ret[0], ret[1]);
            } finally {
                wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
            }
        }
        /**
         * The user logged in.
         * @returns {string}
         */
        get user() {
            let deferred1_0;
            let deferred1_1;
            try {
                const ret = wasm.__wbg_get_loginreport_user(this.__wbg_ptr);
                deferred1_0 = ret[0];
                deferred1_1 = ret[1];
                return getStringFromWasm0(ret[0], ret[1]);
            } finally {
                wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
            }
        }
        /**
         * The challenge bundle's access counter.
         * @param {bigint} arg0
         */
        set counter(arg0) {
            wasm.__wbg_set_loginreport_counter(this.__wbg_ptr, arg0);
        }
        /**
         * The module's SHA-256, hex.
         * @param {string} arg0
         */
        set sha256(arg0) {
            const ptr0 = passStringToWasm0(arg0, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len0 = WASM_VECTOR_LEN;
            wasm.__wbg_set_loginreport_sha256(this.__wbg_ptr, ptr0, len0);
        }
        /**
         * Who signed the module's entry: `targets` (first party) or `author:<id>`.
         * @param {string} arg0
         */
        set signedBy(arg0) {
            const ptr0 = passStringToWasm0(arg0, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len0 = WASM_VECTOR_LEN;
            wasm.__wbg_set_loginreport_signedBy(this.__wbg_ptr, ptr0, len0);
        }
        /**
         * The transform's name (from the trusted registry entry).
         * @param {string} arg0
         */
        set transform(arg0) {
            const ptr0 = passStringToWasm0(arg0, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len0 = WASM_VECTOR_LEN;
            wasm.__wbg_set_loginreport_transform(this.__wbg_ptr, ptr0, len0);
        }
        /**
         * The user logged in.
         * @param {string} arg0
         */
        set user(arg0) {
            const ptr0 = passStringToWasm0(arg0, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len0 = WASM_VECTOR_LEN;
            wasm.__wbg_set_loginreport_user(this.__wbg_ptr, ptr0, len0);
        }
    }
    if (Symbol.dispose) LoginReport.prototype[Symbol.dispose] = LoginReport.prototype.free;
    exports.LoginReport = LoginReport;

    /**
     * A message opened from the inbox.
     */
    class Opened {
        static __wrap(ptr) {
            const obj = Object.create(Opened.prototype);
            obj.__wbg_ptr = ptr;
            OpenedFinalization.register(obj, obj.__wbg_ptr, obj);
            return obj;
        }
        __destroy_into_raw() {
            const ptr = this.__wbg_ptr;
            this.__wbg_ptr = 0;
            OpenedFinalization.unregister(this);
            return ptr;
        }
        free() {
            const ptr = this.__destroy_into_raw();
            wasm.__wbg_opened_free(ptr, 0);
        }
        /**
         * The body, as text (invalid UTF-8 replaced).
         * @returns {string}
         */
        get body() {
            let deferred1_0;
            let deferred1_1;
            try {
                const ret = wasm.__wbg_get_opened_body(this.__wbg_ptr);
                deferred1_0 = ret[0];
                deferred1_1 = ret[1];
                return getStringFromWasm0(ret[0], ret[1]);
            } finally {
                wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
            }
        }
        /**
         * The sender.
         * @returns {string}
         */
        get from() {
            let deferred1_0;
            let deferred1_1;
            try {
                const ret = wasm.__wbg_get_opened_from(this.__wbg_ptr);
                deferred1_0 = ret[0];
                deferred1_1 = ret[1];
                return getStringFromWasm0(ret[0], ret[1]);
            } finally {
                wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
            }
        }
        /**
         * The host's id of the message.
         * @returns {bigint}
         */
        get id() {
            const ret = wasm.__wbg_get_opened_id(this.__wbg_ptr);
            return BigInt.asUintN(64, ret);
        }
        /**
         * When the host accepted it (unix seconds).
         * @returns {bigint}
         */
        get sentAt() {
            const ret = wasm.__wbg_get_opened_sentAt(this.__wbg_ptr);
            return BigInt.asUintN(64, ret);
        }
        /**
         * The body, as text (invalid UTF-8 replaced).
         * @param {string} arg0
         */
        set body(arg0) {
            const ptr0 = passStringToWasm0(arg0, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len0 = WASM_VECTOR_LEN;
            wasm.__wbg_set_opened_body(this.__wbg_ptr, ptr0, len0);
        }
        /**
         * The sender.
         * @param {string} arg0
         */
        set from(arg0) {
            const ptr0 = passStringToWasm0(arg0, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            const len0 = WASM_VECTOR_LEN;
            wasm.__wbg_set_opened_from(this.__wbg_ptr, ptr0, len0);
        }
        /**
         * The host's id of the message.
         * @param {bigint} arg0
         */
        set id(arg0) {
            wasm.__wbg_set_opened_id(this.__wbg_ptr, arg0);
        }
        /**
         * When the host accepted it (unix seconds).
         * @param {bigint} arg0
         */
        set sentAt(arg0) {
            wasm.__wbg_set_opened_sentAt(this.__wbg_ptr, arg0);
        }
    }
    if (Symbol.dispose) Opened.prototype[Symbol.dispose] = Opened.prototype.free;
    exports.Opened = Opened;

    /**
     * The browser client: trust store, the login under way, the open session.
     */
    class WebClient {
        __destroy_into_raw() {
            const ptr = this.__wbg_ptr;
            this.__wbg_ptr = 0;
            WebClientFinalization.unregister(this);
            return ptr;
        }
        free() {
            const ptr = this.__destroy_into_raw();
            wasm.__wbg_webclient_free(ptr, 0);
        }
        /**
         * The acknowledgement of every message opened since the last inbox (`POST
         * /v1/inbox/ack`), or `undefined` if none was.
         * @returns {Uint8Array | undefined}
         */
        ack() {
            const ret = wasm.webclient_ack(this.__wbg_ptr);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            let v1;
            if (ret[0] !== 0) {
                v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
                wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            }
            return v1;
        }
        /**
         * Admits the module's bytes: length and SHA-256 against the signed entry, the ticket
         * and revocations again, then the static checks (pure profile: no imports; the ABI
         * exports; declared memory and tables within the entry's limits). Only bytes this
         * accepted may be instantiated.
         * @param {Uint8Array | number[]} module
         */
        admit(module) {
            const ptr0 = passArray8ToWasm0(module, wasm.__wbindgen_malloc);
            const len0 = WASM_VECTOR_LEN;
            const ret = wasm.webclient_admit(this.__wbg_ptr, ptr0, len0);
            if (ret[1]) {
                throw takeFromExternrefTable0(ret[0]);
            }
        }
        /**
         * The auth transform's input for the user's answers (one per prompt, in order).
         * @param {string[]} answers
         * @returns {Uint8Array}
         */
        authInput(answers) {
            const ptr0 = passArrayJsValueToWasm0(answers, wasm.__wbindgen_malloc);
            const len0 = WASM_VECTOR_LEN;
            const ret = wasm.webclient_authInput(this.__wbg_ptr, ptr0, len0);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            var v2 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            return v2;
        }
        /**
         * The `Authorization` header value of the open session.
         * @returns {string}
         */
        authorization() {
            let deferred2_0;
            let deferred2_1;
            try {
                const ret = wasm.webclient_authorization(this.__wbg_ptr);
                var ptr1 = ret[0];
                var len1 = ret[1];
                if (ret[3]) {
                    ptr1 = 0; len1 = 0;
                    throw takeFromExternrefTable0(ret[2]);
                }
                deferred2_0 = ptr1;
                deferred2_1 = len1;
                return getStringFromWasm0(ptr1, len1);
            } finally {
                wasm.__wbindgen_free(deferred2_0, deferred2_1, 1);
            }
        }
        /**
         * Opens the sealed challenge bundle: its prompts, in order.
         * @param {Uint8Array | number[]} sealed
         * @returns {string[]}
         */
        bundle(sealed) {
            const ptr0 = passArray8ToWasm0(sealed, wasm.__wbindgen_malloc);
            const len0 = WASM_VECTOR_LEN;
            const ret = wasm.webclient_bundle(this.__wbg_ptr, ptr0, len0);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            var v2 = getArrayJsValueFromWasm0(ret[0], ret[1]);
            wasm.__wbindgen_free(ret[0], ret[1] * 4, 4);
            return v2;
        }
        /**
         * Checks the bundle's ticket against the trusted registry (refreshing it once if the
         * ticket names a newer one): the next repository path to fetch, or `undefined` when
         * the ticket and the bundle's module reference are accepted.
         * @returns {string | undefined}
         */
        checkTicket() {
            const ret = wasm.webclient_checkTicket(this.__wbg_ptr);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            let v1;
            if (ret[0] !== 0) {
                v1 = getStringFromWasm0(ret[0], ret[1]);
                wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            }
            return v1;
        }
        /**
         * Checks the host's confirm (answered with 200 to the response) and opens the session:
         * what ran, for the page to show.
         * @param {Uint8Array | number[]} body
         * @returns {LoginReport}
         */
        confirm(body) {
            const ptr0 = passArray8ToWasm0(body, wasm.__wbindgen_malloc);
            const len0 = WASM_VECTOR_LEN;
            const ret = wasm.webclient_confirm(this.__wbg_ptr, ptr0, len0);
            if (ret[2]) {
                throw takeFromExternrefTable0(ret[1]);
            }
            return LoginReport.__wrap(ret[0]);
        }
        /**
         * The finish request to send after [`finish`](Self::finish) refused the password.
         * @returns {Uint8Array | undefined}
         */
        decoy() {
            const ret = wasm.webclient_decoy(this.__wbg_ptr);
            let v1;
            if (ret[0] !== 0) {
                v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
                wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            }
            return v1;
        }
        /**
         * Checks the host's start response and finishes OPAQUE: the finish request's bytes.
         * A refused password throws, leaving the decoy finish in [`decoy`](Self::decoy).
         * @param {Uint8Array | number[]} response
         * @returns {Uint8Array}
         */
        finish(response) {
            const ptr0 = passArray8ToWasm0(response, wasm.__wbindgen_malloc);
            const len0 = WASM_VECTOR_LEN;
            const ret = wasm.webclient_finish(this.__wbg_ptr, ptr0, len0);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            var v2 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            return v2;
        }
        /**
         * Forgets the session and any login under way (the page posts `/v1/logout` first).
         */
        forget() {
            wasm.webclient_forget(this.__wbg_ptr);
        }
        /**
         * Whether a session is open.
         * @returns {boolean}
         */
        hasSession() {
            const ret = wasm.webclient_hasSession(this.__wbg_ptr);
            return ret !== 0;
        }
        /**
         * The message transform's input for inbox message `i`.
         * @param {number} i
         * @returns {Uint8Array}
         */
        inboxInput(i) {
            const ret = wasm.webclient_inboxInput(this.__wbg_ptr, i);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            var v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            return v1;
        }
        /**
         * Takes an inbox answer (`GET /v1/inbox`): how many messages it holds.
         * @param {Uint8Array | number[]} body
         * @returns {number}
         */
        inbox(body) {
            const ptr0 = passArray8ToWasm0(body, wasm.__wbindgen_malloc);
            const len0 = WASM_VECTOR_LEN;
            const ret = wasm.webclient_inbox(this.__wbg_ptr, ptr0, len0);
            if (ret[2]) {
                throw takeFromExternrefTable0(ret[1]);
            }
            return ret[0] >>> 0;
        }
        /**
         * The entry's linear memory limit, bytes (the Worker refuses a call that grew past it).
         * @returns {number}
         */
        memoryLimit() {
            const ret = wasm.webclient_memoryLimit(this.__wbg_ptr);
            if (ret[2]) {
                throw takeFromExternrefTable0(ret[1]);
            }
            return ret[0];
        }
        /**
         * The path of the module to fetch (`/v1/modules/<sha256>.wasm`), once the ticket is
         * accepted.
         * @returns {string}
         */
        modulePath() {
            let deferred2_0;
            let deferred2_1;
            try {
                const ret = wasm.webclient_modulePath(this.__wbg_ptr);
                var ptr1 = ret[0];
                var len1 = ret[1];
                if (ret[3]) {
                    ptr1 = 0; len1 = 0;
                    throw takeFromExternrefTable0(ret[2]);
                }
                deferred2_0 = ptr1;
                deferred2_1 = len1;
                return getStringFromWasm0(ptr1, len1);
            } finally {
                wasm.__wbindgen_free(deferred2_0, deferred2_1, 1);
            }
        }
        /**
         * A client pinned to `root` (the registry's `1.root.json`), which must hash (SHA-256)
         * to `pin_hex`, the value the host wrote into the page.
         * @param {Uint8Array | number[]} root
         * @param {string} pin_hex
         */
        constructor(root, pin_hex) {
            let ptr0, len0, ptr1, len1;
            try {
                ptr0 = passArray8ToWasm0(root, wasm.__wbindgen_malloc);
                len0 = WASM_VECTOR_LEN;
                ptr1 = passStringToWasm0(pin_hex, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
                len1 = WASM_VECTOR_LEN;
            } catch (e) {
                if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
                if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
                throw e;
            }
            const ret = wasm.webclient_new(ptr0, len0, ptr1, len1);
            if (ret[2]) {
                throw takeFromExternrefTable0(ret[1]);
            }
            this.__wbg_ptr = ret[0];
            WebClientFinalization.register(this, this.__wbg_ptr, this);
            return this;
        }
        /**
         * Opens inbox message `i` with the transform's output.
         * @param {number} i
         * @param {Uint8Array | number[]} t_msg
         * @returns {Opened}
         */
        open(i, t_msg) {
            const val2 = +i;
            const ptr0 = passArray8ToWasm0(t_msg, wasm.__wbindgen_malloc);
            const len0 = WASM_VECTOR_LEN;
            const ret = wasm.webclient_open(this.__wbg_ptr, val2, ptr0, len0);
            if (ret[2]) {
                throw takeFromExternrefTable0(ret[1]);
            }
            return Opened.__wrap(ret[0]);
        }
        /**
         * Reserves the next message number: the message transform's input for it.
         * @returns {Uint8Array}
         */
        prepareSend() {
            const ret = wasm.webclient_prepareSend(this.__wbg_ptr);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            var v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            return v1;
        }
        /**
         * Hands over a fetched repository file (`undefined`: the host answered 404).
         * @param {string} path
         * @param {Uint8Array | number[] | null} [bytes]
         */
        provide(path, bytes) {
            let ptr0, len0, ptr1, len1;
            try {
                ptr0 = passStringToWasm0(path, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
                len0 = WASM_VECTOR_LEN;
                ptr1 = isLikeNone(bytes) ? 0 : passArray8ToWasm0(bytes, wasm.__wbindgen_malloc);
                len1 = WASM_VECTOR_LEN;
            } catch (e) {
                if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
                if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
                throw e;
            }
            wasm.webclient_provide(this.__wbg_ptr, ptr0, len0, ptr1, len1);
        }
        /**
         * The response request for the auth transform's output.
         * @param {Uint8Array | number[]} t_auth
         * @returns {Uint8Array}
         */
        respond(t_auth) {
            const ptr0 = passArray8ToWasm0(t_auth, wasm.__wbindgen_malloc);
            const len0 = WASM_VECTOR_LEN;
            const ret = wasm.webclient_respond(this.__wbg_ptr, ptr0, len0);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            var v2 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            return v2;
        }
        /**
         * Seals `body` for `to` under the number [`prepare_send`](Self::prepare_send) reserved,
         * with the transform's output `t_msg`: the bytes to post to `/v1/messages`.
         * @param {Uint8Array | number[]} t_msg
         * @param {string} to
         * @param {string} body
         * @returns {Uint8Array}
         */
        seal(t_msg, to, body) {
            let ptr0, len0, ptr1, len1, ptr2, len2;
            try {
                ptr0 = passArray8ToWasm0(t_msg, wasm.__wbindgen_malloc);
                len0 = WASM_VECTOR_LEN;
                ptr1 = passStringToWasm0(to, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
                len1 = WASM_VECTOR_LEN;
                ptr2 = passStringToWasm0(body, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
                len2 = WASM_VECTOR_LEN;
            } catch (e) {
                if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
                if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
                if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
                throw e;
            }
            const ret = wasm.webclient_seal(this.__wbg_ptr, ptr0, len0, ptr1, len1, ptr2, len2);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            var v4 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            return v4;
        }
        /**
         * Starts a login (ending any open session here): the start request's bytes, for
         * `POST /v1/login/start` (they ask the host not to bind the channel: a page cannot read
         * its TLS exporter).
         * @param {string} user
         * @param {string} password
         * @returns {Uint8Array}
         */
        start(user, password) {
            let ptr0, len0, ptr1, len1;
            try {
                ptr0 = passStringToWasm0(user, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
                len0 = WASM_VECTOR_LEN;
                ptr1 = passStringToWasm0(password, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
                len1 = WASM_VECTOR_LEN;
            } catch (e) {
                if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
                if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
                throw e;
            }
            const ret = wasm.webclient_start(this.__wbg_ptr, ptr0, len0, ptr1, len1);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            var v3 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            return v3;
        }
        /**
         * How long the Worker may run one transform call, in milliseconds: the entry's fuel at
         * 25 000 units per millisecond (50 M, the default, is 2 s), from 1 s to 30 s.
         * @returns {number}
         */
        timeLimitMs() {
            const ret = wasm.webclient_timeLimitMs(this.__wbg_ptr);
            if (ret[2]) {
                throw takeFromExternrefTable0(ret[1]);
            }
            return ret[0] >>> 0;
        }
        /**
         * Brings the trust store up to date: returns the next repository path to fetch and
         * [`provide`](Self::provide), or `undefined` when done.
         * @returns {string | undefined}
         */
        update() {
            const ret = wasm.webclient_update(this.__wbg_ptr);
            if (ret[3]) {
                throw takeFromExternrefTable0(ret[2]);
            }
            let v1;
            if (ret[0] !== 0) {
                v1 = getStringFromWasm0(ret[0], ret[1]);
                wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
            }
            return v1;
        }
        /**
         * The logged-in user's name.
         * @returns {string}
         */
        user() {
            let deferred2_0;
            let deferred2_1;
            try {
                const ret = wasm.webclient_user(this.__wbg_ptr);
                var ptr1 = ret[0];
                var len1 = ret[1];
                if (ret[3]) {
                    ptr1 = 0; len1 = 0;
                    throw takeFromExternrefTable0(ret[2]);
                }
                deferred2_0 = ptr1;
                deferred2_1 = len1;
                return getStringFromWasm0(ptr1, len1);
            } finally {
                wasm.__wbindgen_free(deferred2_0, deferred2_1, 1);
            }
        }
    }
    if (Symbol.dispose) WebClient.prototype[Symbol.dispose] = WebClient.prototype.free;
    exports.WebClient = WebClient;
    function __wbg_get_imports() {
        const import0 = {
            __proto__: null,
            __wbg___wbindgen_is_function_741ff2bb612836f5: function(arg0) {
                const ret = typeof(arg0) === 'function';
                return ret;
            },
            __wbg___wbindgen_is_object_8b968c3ab8e96595: function(arg0) {
                const val = arg0;
                const ret = typeof(val) === 'object' && val !== null;
                return ret;
            },
            __wbg___wbindgen_is_string_fc456fee5d3317de: function(arg0) {
                const ret = typeof(arg0) === 'string';
                return ret;
            },
            __wbg___wbindgen_is_undefined_be5b34249ff1fc15: function(arg0) {
                const ret = arg0 === undefined;
                return ret;
            },
            __wbg___wbindgen_string_get_7ce8eee7fd327545: function(arg0, arg1) {
                const obj = arg1;
                const ret = typeof(obj) === 'string' ? obj : undefined;
                var ptr1 = isLikeNone(ret) ? 0 : passStringToWasm0(ret, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
                var len1 = WASM_VECTOR_LEN;
                getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 1, len1, true);
                getDataViewMemory0().setInt32((arg0 >>> 0) + 4 * 0, ptr1, true);
            },
            __wbg___wbindgen_throw_4c88d8bf264fd984: function(arg0, arg1) {
                throw new Error(getStringFromWasm0(arg0, arg1));
            },
            __wbg_call_a410eb4b59ed5965: function() { return handleError(function (arg0, arg1, arg2) {
                const ret = arg0.call(arg1, arg2);
                return ret;
            }, arguments); },
            __wbg_crypto_23f565a907d30078: function(arg0) {
                const ret = arg0.crypto;
                return ret;
            },
            __wbg_getRandomValues_d2908e0b99612b91: function() { return handleError(function (arg0, arg1) {
                arg0.getRandomValues(arg1);
            }, arguments); },
            __wbg_length_186163212ffe79c3: function(arg0) {
                const ret = arg0.length;
                return ret;
            },
            __wbg_msCrypto_d5f06fad6bf1409b: function(arg0) {
                const ret = arg0.msCrypto;
                return ret;
            },
            __wbg_new_787b9fb330d55d78: function(arg0, arg1) {
                const ret = new Error(getStringFromWasm0(arg0, arg1));
                return ret;
            },
            __wbg_new_with_length_01b143a7e5dd5a3e: function(arg0) {
                const ret = new Uint8Array(arg0 >>> 0);
                return ret;
            },
            __wbg_node_86166ff8ce1f2002: function(arg0) {
                const ret = arg0.node;
                return ret;
            },
            __wbg_now_463ac581d2fc7ea3: function() {
                const ret = Date.now();
                return ret;
            },
            __wbg_process_91f425a63f58e399: function(arg0) {
                const ret = arg0.process;
                return ret;
            },
            __wbg_prototypesetcall_13162965d1fe7aa3: function(arg0, arg1, arg2) {
                Uint8Array.prototype.set.call(getArrayU8FromWasm0(arg0, arg1), arg2);
            },
            __wbg_randomFillSync_34b023059e3363de: function() { return handleError(function (arg0, arg1) {
                arg0.randomFillSync(arg1);
            }, arguments); },
            __wbg_require_9a7d8cc2e1d275c0: function() { return handleError(function () {
                const ret = module.require;
                return ret;
            }, arguments); },
            __wbg_static_accessor_GLOBAL_THIS_003ee833af9699fc: function() {
                const ret = typeof globalThis === 'undefined' ? undefined : globalThis;
                return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
            },
            __wbg_static_accessor_GLOBAL_e4293fb22cbe77da: function() {
                const ret = typeof global === 'undefined' ? undefined : global;
                return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
            },
            __wbg_static_accessor_SELF_53bb20457401453d: function() {
                const ret = typeof self === 'undefined' ? undefined : self;
                return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
            },
            __wbg_static_accessor_WINDOW_b5e0810bfecb7feb: function() {
                const ret = typeof window === 'undefined' ? undefined : window;
                return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
            },
            __wbg_subarray_58f388a9247ac0bb: function(arg0, arg1, arg2) {
                const ret = arg0.subarray(arg1 >>> 0, arg2 >>> 0);
                return ret;
            },
            __wbg_versions_6e128a981b0df859: function(arg0) {
                const ret = arg0.versions;
                return ret;
            },
            __wbindgen_generic_0000000000000001: function(arg0, arg1) {
                // Cast intrinsic for `Ref(Slice(U8)) -> NamedExternref("Uint8Array")`.
                const ret = getArrayU8FromWasm0(arg0, arg1);
                return ret;
            },
            __wbindgen_generic_0000000000000002: function(arg0, arg1) {
                // Cast intrinsic for `Ref(String) -> Externref`.
                const ret = getStringFromWasm0(arg0, arg1);
                return ret;
            },
            __wbindgen_init_externref_table: function() {
                const table = wasm.__wbindgen_externrefs;
                table.set(0, undefined);
                table.set(1024, undefined);
                table.set(1025, null);
                table.set(1026, true);
                table.set(1027, false);
            },
        };
        return {
            __proto__: null,
            "./kasane_web_bg.js": import0,
        };
    }

    const LoginReportFinalization = (typeof FinalizationRegistry === 'undefined')
        ? { register: () => {}, unregister: () => {} }
        : new FinalizationRegistry(ptr => wasm.__wbg_loginreport_free(ptr, 1));
    const OpenedFinalization = (typeof FinalizationRegistry === 'undefined')
        ? { register: () => {}, unregister: () => {} }
        : new FinalizationRegistry(ptr => wasm.__wbg_opened_free(ptr, 1));
    const WebClientFinalization = (typeof FinalizationRegistry === 'undefined')
        ? { register: () => {}, unregister: () => {} }
        : new FinalizationRegistry(ptr => wasm.__wbg_webclient_free(ptr, 1));

    function addToExternrefTable0(obj) {
        const idx = wasm.__externref_table_alloc();
        wasm.__wbindgen_externrefs.set(idx, obj);
        return idx;
    }

    function getArrayJsValueFromWasm0(ptr, len) {
        ptr = ptr >>> 0;
        const mem = getDataViewMemory0();
        const result = [];
        for (let i = ptr; i < ptr + 4 * len; i += 4) {
            result.push(wasm.__wbindgen_externrefs.get(mem.getUint32(i, true)));
        }
        wasm.__externref_drop_slice(ptr, len);
        return result;
    }

    function getArrayU8FromWasm0(ptr, len) {
        ptr = ptr >>> 0;
        return getUint8ArrayMemory0().subarray(ptr / 1, ptr / 1 + len);
    }

    let cachedDataViewMemory0 = null;
    function getDataViewMemory0() {
        if (cachedDataViewMemory0 === null || cachedDataViewMemory0.buffer.detached === true || (cachedDataViewMemory0.buffer.detached === undefined && cachedDataViewMemory0.buffer !== wasm.memory.buffer)) {
            cachedDataViewMemory0 = new DataView(wasm.memory.buffer);
        }
        return cachedDataViewMemory0;
    }

    function getStringFromWasm0(ptr, len) {
        ptr = ptr >>> 0;
        return decodeText(getUint8ArrayMemory0().subarray(ptr, ptr + len));
    }

    let cachedUint8ArrayMemory0 = null;
    function getUint8ArrayMemory0() {
        if (cachedUint8ArrayMemory0 === null || cachedUint8ArrayMemory0.byteLength === 0) {
            cachedUint8ArrayMemory0 = new Uint8Array(wasm.memory.buffer);
        }
        return cachedUint8ArrayMemory0;
    }

    function handleError(f, args) {
        try {
            return f.apply(this, args);
        } catch (e) {
            const idx = addToExternrefTable0(e);
            wasm.__wbindgen_exn_store(idx);
        }
    }

    function isLikeNone(x) {
        return x === undefined || x === null;
    }

    function passArray8ToWasm0(arg, malloc) {
        const ptr = malloc(arg.length * 1, 1) >>> 0;
        getUint8ArrayMemory0().set(arg, ptr / 1);
        WASM_VECTOR_LEN = arg.length;
        return ptr;
    }

    function passArrayJsValueToWasm0(array, malloc) {
        const ptr = malloc(array.length * 4, 4) >>> 0;
        for (let i = 0; i < array.length; i++) {
            const add = addToExternrefTable0(array[i]);
            getDataViewMemory0().setUint32(ptr + 4 * i, add, true);
        }
        WASM_VECTOR_LEN = array.length;
        return ptr;
    }

    function passStringToWasm0(arg, malloc, realloc) {
        if (realloc === undefined) {
            const buf = cachedTextEncoder.encode(arg);
            const ptr = malloc(buf.length, 1) >>> 0;
            getUint8ArrayMemory0().subarray(ptr, ptr + buf.length).set(buf);
            WASM_VECTOR_LEN = buf.length;
            return ptr;
        }

        let len = arg.length;
        let ptr = malloc(len, 1) >>> 0;

        const mem = getUint8ArrayMemory0();

        let offset = 0;

        for (; offset < len; offset++) {
            const code = arg.charCodeAt(offset);
            if (code > 0x7F) break;
            mem[ptr + offset] = code;
        }
        if (offset !== len) {
            if (offset !== 0) {
                arg = arg.slice(offset);
            }
            ptr = realloc(ptr, len, len = offset + arg.length * 3, 1) >>> 0;
            const view = getUint8ArrayMemory0().subarray(ptr + offset, ptr + len);
            const ret = cachedTextEncoder.encodeInto(arg, view);

            offset += ret.written;
            ptr = realloc(ptr, len, offset, 1) >>> 0;
        }

        WASM_VECTOR_LEN = offset;
        return ptr;
    }

    function takeFromExternrefTable0(idx) {
        const value = wasm.__wbindgen_externrefs.get(idx);
        wasm.__externref_table_dealloc(idx);
        return value;
    }

    let cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
    cachedTextDecoder.decode();
    function decodeText(bytes) {
        return cachedTextDecoder.decode(bytes);
    }

    const cachedTextEncoder = new TextEncoder();

    if (!('encodeInto' in cachedTextEncoder)) {
        cachedTextEncoder.encodeInto = function (arg, view) {
            const buf = cachedTextEncoder.encode(arg);
            view.set(buf);
            return {
                read: arg.length,
                written: buf.length
            };
        };
    }

    let WASM_VECTOR_LEN = 0;

    let wasmModule, wasmInstance, wasm;
    function __wbg_finalize_init(instance, module) {
        wasmInstance = instance;
        wasm = instance.exports;
        wasmModule = module;
        cachedDataViewMemory0 = null;
        cachedUint8ArrayMemory0 = null;
        wasm.__wbindgen_start();
        return wasm;
    }

    async function __wbg_load(module, imports) {
        if (typeof Response === 'function' && module instanceof Response) {
            if (!module.ok) {
                throw new Error(`failed to fetch Wasm: ${module.status} ${module.statusText} fetching '${module.url}'`);
            }

            if (typeof WebAssembly.instantiateStreaming === 'function') {
                try {
                    return await WebAssembly.instantiateStreaming(module, imports);
                } catch (e) {
                    const validResponse = expectedResponseType(module.type);

                    if (validResponse && module.headers.get('Content-Type') !== 'application/wasm') {
                        console.warn("`WebAssembly.instantiateStreaming` failed because your server does not serve Wasm with `application/wasm` MIME type. Falling back to `WebAssembly.instantiate` which is slower. Original error:\n", e);

                    } else { throw e; }
                }
            }

            const bytes = await module.arrayBuffer();
            return await WebAssembly.instantiate(bytes, imports);
        } else {
            const instance = await WebAssembly.instantiate(module, imports);

            if (instance instanceof WebAssembly.Instance) {
                return { instance, module };
            } else {
                return instance;
            }
        }

        function expectedResponseType(type) {
            switch (type) {
                case 'basic': case 'cors': case 'default': return true;
            }
            return false;
        }
    }

    function initSync(module) {
        if (wasm !== undefined) return wasm;


        if (module !== undefined) {
            if (Object.getPrototypeOf(module) === Object.prototype) {
                ({module} = module)
            } else {
                console.warn('using deprecated parameters for `initSync()`; pass a single object instead')
            }
        }

        const imports = __wbg_get_imports();
        if (!(module instanceof WebAssembly.Module)) {
            module = new WebAssembly.Module(module);
        }
        const instance = new WebAssembly.Instance(module, imports);
        return __wbg_finalize_init(instance, module);
    }

    let __wbg_init_promise;
    async function __wbg_init(module_or_path) {
        if (wasm !== undefined) return wasm;
        if (__wbg_init_promise === undefined) {
            __wbg_init_promise = __wbg_init_once(module_or_path);
            __wbg_init_promise.catch(() => { __wbg_init_promise = undefined; });
        }
        return __wbg_init_promise;
    }

    async function __wbg_init_once(module_or_path) {

        if (module_or_path !== undefined) {
            if (Object.getPrototypeOf(module_or_path) === Object.prototype) {
                ({module_or_path} = module_or_path)
            } else {
                console.warn('using deprecated parameters for the initialization function; pass a single object instead')
            }
        }

        if (module_or_path === undefined && script_src !== undefined) {
            module_or_path = script_src.replace(/\.js$/, "_bg.wasm");
        }
        const imports = __wbg_get_imports();

        if (typeof module_or_path === 'string' || (typeof Request === 'function' && module_or_path instanceof Request) || (typeof URL === 'function' && module_or_path instanceof URL)) {
            module_or_path = fetch(module_or_path);
        }

        const { instance, module } = await __wbg_load(await module_or_path, imports);

        return __wbg_finalize_init(instance, module);
    }

    return Object.assign(__wbg_init, { initSync }, exports);
})({ __proto__: null });
