/*
 * adam.c - Adam as tf.keras.optimizers.Adam of TensorFlow 2.0 runs it (spec/adam.md), served over the
 * kit's pipe protocol adam-pipe/1 (spec/pipe-protocol.md): one JSON request per line on stdin, one JSON
 * response per line on stdout. Only the C standard library and libm.
 *
 *   build:  gcc -O2 -std=c99 -Wall -Wextra -o /tmp/adam_c ports/c/adam.c -lm
 *           (never -ffast-math; in ISO C mode gcc does not fuse a*b+c into an fma, which keeps the
 *           operation order of the spec)
 *   run:    pytest --candidate-command="/tmp/adam_c"
 *           pytest --candidate-command="/tmp/adam_c --variant=algorithm1-epsilon"   (deliberately wrong)
 *
 * Arithmetic follows the kit's oracle (reference/port.py): every value is kept as a double that is exact
 * in the session's dtype; a step is computed in double and each stored result (variable, m, v, vhat) is
 * rounded to the dtype (round to nearest even, directly from double). float16 and bfloat16 use the same
 * path with their own precision, so all four dtypes of the spec are supported.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int variant_alg1;  /* --variant=algorithm1-epsilon: epsilon on the bias-corrected root */
static char errmsg[512];  /* the message of the current "error" response */

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) { fprintf(stderr, "adam.c: out of memory\n"); exit(1); }
    return q;
}

static int fail(const char *fmt, ...) {  /* records the error message; returns 0 so callers can `return fail(...)` */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return 0;
}

/* ---------- output buffer: a response is built whole, then written as one line ---------- */

typedef struct { char *p; size_t n, cap; } Buf;

static void put(Buf *b, const char *s, size_t k) {
    if (b->n + k + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + k + 1) c *= 2;
        b->p = xrealloc(b->p, c);
        b->cap = c;
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = 0;
}
static void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }
static void putf(Buf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    puts_(b, tmp);
}
static void put_jstr(Buf *b, const char *s, size_t len) {  /* a JSON string; bytes >= 0x80 pass as UTF-8 */
    put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { put(b, "\\", 1); put(b, s + i, 1); }
        else if (c < 0x20) putf(b, "\\u%04x", c);
        else put(b, s + i, 1);
    }
    put(b, "\"", 1);
}

/* ---------- JSON reader: a tree over the request line; strings are unescaped in place ---------- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
typedef struct J { int type; double num; char *str, *key; size_t len, keylen; struct J *kid, *next; } J;
typedef struct { char *s; int depth; } Parser;

static void jfree(J *j) {  /* iterative along siblings, recursive only into nesting (bounded depth) */
    while (j) { J *n = j->next; jfree(j->kid); free(j); j = n; }
}
static void skip_ws(Parser *p) { while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r') p->s++; }
static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {  /* stops at the first non-hex character, so never reads past the end */
        int c = s[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 1;
}
static int parse_string(Parser *p, char **out, size_t *len) {
    char *r = ++p->s, *w = r, *start = r;  /* the unescaped text is never longer than its escaped form */
    for (;;) {
        unsigned char c = (unsigned char)*r;
        if (c == '"') break;
        if (c == 0 || c < 0x20) return fail("bad string in JSON");
        if (c != '\\') { *w++ = *r++; continue; }
        r++;
        switch (*r++) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned u, lo;
            if (!hex4(r, &u)) return fail("bad \\u escape in JSON");
            r += 4;
            if (u >= 0xD800 && u < 0xDC00 && r[0] == '\\' && r[1] == 'u' && hex4(r + 2, &lo)
                && lo >= 0xDC00 && lo < 0xE000) {  /* a surrogate pair */
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                r += 6;
            } else if (u >= 0xD800 && u < 0xE000) return fail("unpaired surrogate in JSON string");
            if (u < 0x80) *w++ = (char)u;
            else if (u < 0x800) { *w++ = (char)(0xC0 | u >> 6); *w++ = (char)(0x80 | (u & 63)); }
            else if (u < 0x10000) { *w++ = (char)(0xE0 | u >> 12); *w++ = (char)(0x80 | (u >> 6 & 63));
                                    *w++ = (char)(0x80 | (u & 63)); }
            else { *w++ = (char)(0xF0 | u >> 18); *w++ = (char)(0x80 | (u >> 12 & 63));
                   *w++ = (char)(0x80 | (u >> 6 & 63)); *w++ = (char)(0x80 | (u & 63)); }
            break;
        }
        default: return fail("bad escape in JSON string");
        }
    }
    p->s = r + 1;
    *w = 0;
    *out = start;
    *len = (size_t)(w - start);
    return 1;
}
static int parse_number(Parser *p, double *out) {
    char *s = p->s, *end;
    /* JSON's grammar first (strtod alone would also take "inf", hex, ".5"), then strtod: correctly rounded */
    if (*s == '-') s++;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (*s >= '0' && *s <= '9') s++;
    else return fail("bad number in JSON");
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9')) return fail("bad number in JSON");
        while (*s >= '0' && *s <= '9') s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return fail("bad number in JSON");
        while (*s >= '0' && *s <= '9') s++;
    }
    *out = strtod(p->s, &end);
    if (end != s) return fail("bad number in JSON");
    p->s = s;
    return 1;
}
static J *parse_value(Parser *p) {
    J *j = xrealloc(NULL, sizeof *j), **tail;
    memset(j, 0, sizeof *j);
    skip_ws(p);
    char c = *p->s;
    if (c == '{' || c == '[') {
        if (++p->depth > 64) { fail("JSON nested too deeply"); goto bad; }
        j->type = c == '{' ? J_OBJ : J_ARR;
        p->s++;
        tail = &j->kid;
        skip_ws(p);
        if (*p->s == (c == '{' ? '}' : ']')) { p->s++; p->depth--; return j; }
        for (;;) {
            char *key = NULL;
            size_t keylen = 0;
            skip_ws(p);
            if (c == '{') {
                if (*p->s != '"' || !parse_string(p, &key, &keylen)) { fail("bad object key in JSON"); goto bad; }
                skip_ws(p);
                if (*p->s++ != ':') { fail("missing ':' in JSON object"); goto bad; }
            }
            J *kid = parse_value(p);
            if (!kid) goto bad;
            kid->key = key;
            kid->keylen = keylen;
            *tail = kid;
            tail = &kid->next;
            skip_ws(p);
            if (*p->s == ',') { p->s++; continue; }
            if (*p->s++ == (c == '{' ? '}' : ']')) break;
            fail("missing ',' or closing bracket in JSON");
            goto bad;
        }
        p->depth--;
    } else if (c == '"') {
        j->type = J_STR;
        if (!parse_string(p, &j->str, &j->len)) goto bad;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        j->type = J_NUM;
        if (!parse_number(p, &j->num)) goto bad;
    } else if (!strncmp(p->s, "true", 4)) { j->type = J_BOOL; j->num = 1; p->s += 4; }
    else if (!strncmp(p->s, "false", 5)) { j->type = J_BOOL; p->s += 5; }
    else if (!strncmp(p->s, "null", 4)) { j->type = J_NULL; p->s += 4; }
    else { fail("not JSON"); goto bad; }
    return j;
bad:
    jfree(j);
    return NULL;
}
static J *jget(const J *obj, const char *key) {
    for (J *k = obj && obj->type == J_OBJ ? obj->kid : NULL; k; k = k->next)
        if (k->keylen == strlen(key) && !memcmp(k->key, key, k->keylen)) return k;
    return NULL;
}
static int jcount(const J *j) { int n = 0; for (J *k = j->kid; k; k = k->next) n++; return n; }
/* An integer field: a JSON number that is integral, within [lo, 2^53]. */
static int jint(const J *j, double lo, const char *what, long long *out) {
    if (!j || j->type != J_NUM || j->num != floor(j->num) || j->num < lo || j->num > 9007199254740992.0)
        return fail("'%s' must be an integer >= %.0f", what, lo);
    *out = (long long)j->num;
    return 1;
}

/* ---------- base64 (standard alphabet, with padding) ---------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_b64(Buf *b, const unsigned char *s, size_t n) {
    size_t need = (n + 2) / 3 * 4;
    if (b->n + need + 1 > b->cap) { b->cap = b->n + need + 1; b->p = xrealloc(b->p, b->cap); }
    char *q = b->p + b->n;  /* written in place: this is the bulk of a read response */
    for (size_t i = 0; i < n; i += 3, q += 4) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        q[0] = B64[v >> 18]; q[1] = B64[v >> 12 & 63];
        q[2] = i + 1 < n ? B64[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? B64[v & 63] : '=';
    }
    b->n += need;
    b->p[b->n] = 0;
}
static signed char b64val[256];  /* the alphabet's value of each byte, -1 outside it; filled by main */
/* Decodes s into out (room for `want` bytes); fails unless s holds exactly `want` bytes. */
static int b64_decode(const char *s, size_t len, unsigned char *out, size_t want) {
    size_t pad = len >= 1 && s[len - 1] == '=' ? (len >= 2 && s[len - 2] == '=' ? 2 : 1) : 0;
    if (len % 4) return fail("base64 data of length %zu (not a multiple of 4)", len);
    if (len / 4 * 3 - pad != want) return fail("base64 data holds %zu bytes, %zu expected", len / 4 * 3 - pad, want);
    for (size_t i = 0, o = 0; i < len; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = i + k >= len - pad ? 0 : b64val[(unsigned char)s[i + k]];
            if (v[k] < 0) return fail("bad base64 character");
        }
        unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        for (int k = 0; k < 3 && o < want; k++) out[o++] = (unsigned char)(x >> (16 - 8 * k));
    }
    return 1;
}

/* ---------- dtypes: rounding and the little-endian element formats ---------- */

enum { F16, BF16, F32, F64 };
static const char *DTYPE_NAME[] = {"float16", "bfloat16", "float32", "float64"};
static const size_t DTYPE_SIZE[] = {2, 2, 4, 8};

static int dtype_of(const J *j) {
    for (int d = 0; j && j->type == J_STR && d < 4; d++)
        if (!strcmp(j->str, DTYPE_NAME[d])) return d;
    return -1;
}
/* x rounded to nearest even with p significant bits, normal exponents >= emin, overflow beyond maxv:
 * the quantum at x's binade is a power of two, so x / quantum is exact and nearbyint rounds it once. */
static double round_p(double x, int p, int emin, double maxv) {
    int e;
    if (!isfinite(x) || x == 0) return x;
    frexp(x, &e);  /* 2^(e-1) <= |x| < 2^e */
    int q = (e - 1 > emin ? e - 1 : emin) - (p - 1);
    double r = ldexp(nearbyint(ldexp(x, -q)), q);
    return fabs(r) > maxv ? copysign(HUGE_VAL, x) : r;
}
static double round_to(double x, int dt) {
    switch (dt) {
    case F16: return round_p(x, 11, -14, 65504.0);
    case BF16: return round_p(x, 8, -126, ldexp(255.0, 120));
    case F32: return (double)(float)x;  /* a cast drops excess precision (C99); overflow gives inf (Annex F) */
    default: return x;
    }
}
static double load_elem(const unsigned char *s, int dt) {
    uint64_t u = 0;
    for (size_t k = 0; k < DTYPE_SIZE[dt]; k++) u |= (uint64_t)s[k] << (8 * k);
    if (dt == F64) { double d; memcpy(&d, &u, 8); return d; }
    if (dt == F16) {
        int ex = (int)(u >> 10 & 31);
        double mag = ex == 0 ? ldexp((double)(u & 1023), -24)
                   : ex == 31 ? ((u & 1023) ? NAN : HUGE_VAL) : ldexp((double)((u & 1023) | 1024), ex - 25);
        return u >> 15 ? -mag : mag;
    }
    uint32_t w = dt == BF16 ? (uint32_t)u << 16 : (uint32_t)u;  /* bfloat16 is the upper half of a float32 */
    float f;
    memcpy(&f, &w, 4);
    return f;
}
static void store_elem(unsigned char *s, double x, int dt) {  /* x is already exact in dt */
    uint64_t u;
    if (dt == F64) memcpy(&u, &x, 8);
    else if (dt == F16) {
        double a = fabs(x);
        int e;
        if (isnan(x)) u = 0x7e00;
        else if (isinf(x)) u = 0x7c00;
        else if (a < ldexp(1.0, -14)) u = (uint64_t)ldexp(a, 24);  /* subnormal: an integer multiple of 2^-24 */
        else { frexp(a, &e); u = (uint64_t)(e + 14) << 10 | ((uint64_t)ldexp(a, 11 - e) - 1024); }
        if (signbit(x)) u |= 0x8000;
    } else {
        float f = (float)x;
        uint32_t w;
        memcpy(&w, &f, 4);
        u = dt == BF16 ? w >> 16 : w;
    }
    for (size_t k = 0; k < DTYPE_SIZE[dt]; k++) s[k] = (unsigned char)(u >> (8 * k));
}

/* ---------- arrays ---------- */

#define MAXDIM 64
typedef struct { int nd; size_t d[MAXDIM], n; } Shape;

static int read_shape(const J *j, Shape *sh, const char *what) {
    long long v;
    if (!j || j->type != J_ARR) return fail("%s: shape must be a list", what);
    sh->nd = 0;
    sh->n = 1;
    for (J *k = j->kid; k; k = k->next) {
        if (sh->nd == MAXDIM) return fail("%s: more than %d dimensions", what, MAXDIM);
        if (!jint(k, 0, "shape", &v) || (v && sh->n > (SIZE_MAX / 16) / (size_t)v)) return fail("%s: bad shape", what);
        sh->d[sh->nd++] = (size_t)v;
        sh->n *= (size_t)v;
    }
    return 1;
}
static int same_shape(const Shape *a, const Shape *b) {
    return a->nd == b->nd && !memcmp(a->d, b->d, (size_t)a->nd * sizeof a->d[0]);
}
/* An array object of dtype dt: its elements as a new double[] (NULL on error) and its shape. */
static double *read_array(const J *j, int dt, Shape *sh, const char *what) {
    J *data = jget(j, "data");
    if (!j || j->type != J_OBJ || !data || data->type != J_STR) { fail("%s: not an array object", what); return NULL; }
    if (dtype_of(jget(j, "dtype")) != dt) {
        fail("%s: dtype must be the session's, %s", what, DTYPE_NAME[dt]);
        return NULL;
    }
    if (!read_shape(jget(j, "shape"), sh, what)) return NULL;
    unsigned char *raw = xrealloc(NULL, sh->n * DTYPE_SIZE[dt]);
    double *out = NULL;
    if (b64_decode(data->str, data->len, raw, sh->n * DTYPE_SIZE[dt])) {
        out = xrealloc(NULL, sh->n * sizeof *out);
        for (size_t i = 0; i < sh->n; i++) out[i] = load_elem(raw + i * DTYPE_SIZE[dt], dt);
    } else {
        char m[sizeof errmsg];
        memcpy(m, errmsg, sizeof m);
        fail("%s: %s", what, m);
    }
    free(raw);
    return out;
}
static void put_array(Buf *b, const double *x, const Shape *sh, int dt) {
    unsigned char *raw = xrealloc(NULL, sh->n * DTYPE_SIZE[dt]);
    for (size_t i = 0; i < sh->n; i++) store_elem(raw + i * DTYPE_SIZE[dt], x[i], dt);
    putf(b, "{\"dtype\":\"%s\",\"shape\":[", DTYPE_NAME[dt]);
    for (int k = 0; k < sh->nd; k++) putf(b, k ? ",%zu" : "%zu", sh->d[k]);
    puts_(b, "],\"data\":\"");
    put_b64(b, raw, sh->n * DTYPE_SIZE[dt]);
    puts_(b, "\"}");
    free(raw);
}

/* ---------- sessions ---------- */

enum { H_NUM, H_CALL, H_SCHED };
static const char *HNAME[4] = {"learning_rate", "beta_1", "beta_2", "epsilon"};
static const double HDEFAULT[4] = {0.001, 0.9, 0.999, 1e-7};  /* ADAM-DEFAULTS-1 */
typedef struct { int kind; double num, *sched; size_t nsched; } Hyper;
typedef struct { char *name; size_t namelen; Shape sh; double *x, *m, *v, *vhat; } Var;  /* slots NULL until created */
typedef struct {
    long long id, iterations;
    int dtype, amsgrad;
    Hyper h[4];
    double decay;
    Var *vars;
    size_t nvars;
} Session;

static Session **sessions;
static size_t nsessions;

static void session_free(Session *s) {
    for (size_t i = 0; i < s->nvars; i++) {
        Var *v = &s->vars[i];
        free(v->name); free(v->x); free(v->m); free(v->v); free(v->vhat);
    }
    for (int h = 0; h < 4; h++) free(s->h[h].sched);
    free(s->vars);
    free(s);
}
static Session *find_session(const J *req, size_t *index) {
    long long id;
    if (!jint(jget(req, "session"), 1, "session", &id)) return NULL;
    for (size_t i = 0; i < nsessions; i++)
        if (sessions[i]->id == id) { if (index) *index = i; return sessions[i]; }
    fail("no session %lld", id);
    return NULL;
}
static Var *find_var(Session *s, const char *name, size_t len) {
    for (size_t i = 0; i < s->nvars; i++)
        if (s->vars[i].namelen == len && !memcmp(s->vars[i].name, name, len)) return &s->vars[i];
    fail("no variable '%.*s' in session %lld", (int)(len > 80 ? 80 : len), name, s->id);
    return NULL;
}

/* ---------- the operations: each appends its ok fields to `out`, or returns 0 after fail() ---------- */

static int op_hello(const J *req, Buf *out) {
    J *proto = jget(req, "protocol");
    if (!proto || proto->type != J_STR || strcmp(proto->str, "adam-pipe/1"))
        return fail("this port speaks adam-pipe/1 only");
    puts_(out, ",\"protocol\":\"adam-pipe/1\",\"name\":");
    puts_(out, variant_alg1 ? "\"adam.c (variant algorithm1-epsilon: deliberately wrong)\"" : "\"adam.c\"");
    puts_(out, ",\"version\":\"1.0\",\"supports\":{\"dtypes\":[\"float16\",\"bfloat16\",\"float32\",\"float64\"],"
               "\"amsgrad\":true,\"sparse\":true,\"state_loading\":true,\"slots\":[\"m\",\"v\",\"vhat\"],"
               "\"iterations\":true,\"callables\":true,\"schedule\":true,\"decay\":true}");
    return 1;
}

static int read_hypers(const J *hp, Session *s) {
    for (int h = 0; h < 4; h++) { s->h[h].kind = H_NUM; s->h[h].num = HDEFAULT[h]; }
    s->decay = 0;
    if (!hp || hp->type == J_NULL) return 1;  /* hyperparameters: null, the defaults (ADAM-DEFAULTS-1) */
    if (hp->type != J_OBJ) return fail("'hyperparameters' must be an object or null");
    for (int h = 0; h < 4; h++) {
        J *j = jget(hp, HNAME[h]), *c = jget(j, "callable"), *sc = jget(j, "schedule");
        if (j && j->type == J_NUM)  /* ADAM-TF2-EPS-1: a falsy epsilon becomes 1e-7 */
            s->h[h].num = h == 3 && j->num == 0 ? 1e-7 : j->num;
        else if (c && c->type == J_BOOL && c->num) s->h[h].kind = H_CALL;
        else if (h == 0 && sc && sc->type == J_ARR && sc->kid) {
            s->h[h].kind = H_SCHED;
            s->h[h].sched = xrealloc(NULL, (size_t)jcount(sc) * sizeof(double));
            for (J *k = sc->kid; k; k = k->next) {
                if (k->type != J_NUM) return fail("schedule values must be numbers");
                s->h[h].sched[s->h[h].nsched++] = k->num;
            }
        } else return fail("hyperparameter '%s' must be a number, {\"callable\": true}%s", HNAME[h],
                           h ? "" : " or {\"schedule\": [...]}");
    }
    J *d = jget(hp, "decay");
    if (!d || d->type != J_NUM || !(d->num >= 0)) return fail("'decay' must be a number >= 0");
    s->decay = d->num;
    return 1;
}

static int op_create(const J *req, Buf *out) {
    long long id;
    J *ams = jget(req, "amsgrad"), *vars = jget(req, "variables");
    (void)out;
    if (!jint(jget(req, "session"), 1, "session", &id)) return 0;
    for (size_t i = 0; i < nsessions; i++)
        if (sessions[i]->id == id) return fail("session %lld exists already", id);
    int dt = dtype_of(jget(req, "dtype"));
    if (dt < 0) return fail("'dtype' must be one of float16, bfloat16, float32, float64");
    if (!ams || ams->type != J_BOOL) return fail("'amsgrad' must be a boolean");
    if (!vars || vars->type != J_OBJ) return fail("'variables' must be an object");
    Session *s = xrealloc(NULL, sizeof *s);
    memset(s, 0, sizeof *s);
    s->id = id;
    s->dtype = dt;
    s->amsgrad = (int)ams->num;
    s->vars = xrealloc(NULL, (size_t)jcount(vars) * sizeof(Var));
    if (!read_hypers(jget(req, "hyperparameters"), s)) { session_free(s); return 0; }
    for (J *k = vars->kid; k; k = k->next) {
        Var *v = &s->vars[s->nvars];
        memset(v, 0, sizeof *v);
        if (!(v->x = read_array(k, dt, &v->sh, "variables"))) { session_free(s); return 0; }
        v->name = xrealloc(NULL, k->keylen + 1);
        memcpy(v->name, k->key, k->keylen + 1);
        v->namelen = k->keylen;
        s->nvars++;
        if (find_var(s, v->name, v->namelen) != v) { session_free(s); return fail("variable named twice"); }
    }
    sessions = xrealloc(sessions, (nsessions + 1) * sizeof *sessions);
    sessions[nsessions++] = s;
    return 1;
}

/* 1 - beta^t rounded once, as the oracle forms it exactly: beta^t is kept as an unevaluated sum hi + lo
 * (error-free products by fma), so the cancellation in 1 - beta^t does not magnify pow's rounding. */
static double one_minus_pow(double beta, long long t) {
    double hi = 1, lo = 0, bh = beta, bl = 0;
    for (; t; t >>= 1) {
        if (t & 1) {  /* (hi, lo) *= (bh, bl) */
            double p = hi * bh, e = fma(hi, bh, -p) + (hi * bl + lo * bh);
            hi = p + e; lo = e - (hi - p);
        }
        double p = bh * bh, e = fma(bh, bh, -p) + 2 * bh * bl;
        bh = p + e; bl = e - (bh - p);
    }
    double r = 1 - hi, z = r - 1;  /* two-sum: 1 - hi = r + err exactly */
    double err = (1 - (r - z)) + (-hi - z);
    return r + (err - lo);
}

/* One variable's step (ADAM-UPDATE-1..4, ADAM-AMSGRAD-1/2), in double, stored rounded (ADAM-DTYPE-1). */
static void update(Var *v, const double *g, int dt, int amsgrad, double lr, double b1, double b2, double eps,
                   double alpha, double bc1, double bc2) {
    for (size_t i = 0; i < v->sh.n; i++) {
        double m = b1 * v->m[i] + (1.0 - b1) * g[i];
        double s = b2 * v->v[i] + (1.0 - b2) * (g[i] * g[i]);
        double w = s;
        if (amsgrad) {  /* NaN-propagating max, as NumPy's maximum */
            w = (v->vhat[i] > s || isnan(v->vhat[i])) ? v->vhat[i] : s;
            v->vhat[i] = round_to(w, dt);
        }
        if (variant_alg1)  /* the deliberately wrong variant: Algorithm 1's epsilon */
            v->x[i] = round_to(v->x[i] - (lr * (m / bc1)) / (sqrt(w / bc2) + eps), dt);
        else
            v->x[i] = round_to(v->x[i] - (alpha * m) / (sqrt(w) + eps), dt);
        v->m[i] = round_to(m, dt);
        v->v[i] = round_to(s, dt);
    }
}

static double *zeros(size_t n) {
    double *z = xrealloc(NULL, n * sizeof *z);
    for (size_t i = 0; i < n; i++) z[i] = 0;
    return z;
}

/* A gradient (P-2) of v: dense, or sparse with duplicate rows summed (ADAM-SPARSE-1/2). NULL on error. */
static double *read_gradient(const J *j, Var *v, int dt) {
    Shape sh, dense;
    J *idx = jget(j, "indices");
    if (!idx) {
        double *g = read_array(j, dt, &sh, "gradients");
        if (g && !same_shape(&sh, &v->sh)) {
            free(g);
            fail("gradient of '%s' has the wrong shape", v->name);
            return NULL;
        }
        return g;
    }
    if (idx->type != J_ARR) { fail("'indices' must be a list"); return NULL; }
    if (!read_shape(jget(j, "dense_shape"), &dense, "dense_shape")) return NULL;
    if (!same_shape(&dense, &v->sh) || dense.nd < 1) {
        fail("dense_shape of '%s' is not its shape", v->name);
        return NULL;
    }
    double *vals = read_array(jget(j, "values"), dt, &sh, "values");
    if (!vals) return NULL;
    size_t rows = (size_t)jcount(idx), row = dense.d[0] ? dense.n / dense.d[0] : 0;
    int ok = sh.nd == dense.nd && sh.d[0] == rows  /* values: [len(indices)] + dense_shape[1:] */
             && !memcmp(sh.d + 1, dense.d + 1, (size_t)(dense.nd - 1) * sizeof sh.d[0]);
    double *g = ok ? zeros(dense.n) : NULL;
    if (!ok) fail("sparse values of '%s' have the wrong shape", v->name);
    size_t k = 0;
    for (J *i = idx->kid; ok && i; i = i->next, k++) {
        long long r;
        if (!jint(i, 0, "indices", &r) || (size_t)r >= dense.d[0]) {
            ok = fail("index out of range for '%s'", v->name);
            break;
        }
        for (size_t c = 0; c < row; c++) g[(size_t)r * row + c] += vals[k * row + c];  /* in order of appearance */
    }
    free(vals);
    if (!ok) { free(g); return NULL; }
    return g;
}

static int op_apply(const J *req, Buf *out) {
    Session *s = find_session(req, NULL);
    J *grads = jget(req, "gradients"), *calls = jget(req, "callables");
    double hv[4];
    (void)out;
    if (!s) return 0;
    if (!grads || grads->type != J_OBJ || !calls || calls->type != J_OBJ)
        return fail("'gradients' and 'callables' must be objects");
    /* The values in force at this call: callables as sent (ADAM-HYPER-1), the schedule at the 0-based
     * iterations (ADAM-HYPER-3). */
    for (int h = 0; h < 4; h++) {
        Hyper *y = &s->h[h];
        J *c = jget(calls, HNAME[h]);
        if (y->kind == H_NUM) hv[h] = y->num;
        else if (y->kind == H_CALL) {
            if (!c || c->type != J_NUM) return fail("no value for the callable '%s' in 'callables'", HNAME[h]);
            hv[h] = c->num;
        } else {
            if ((size_t)s->iterations >= y->nsched)
                return fail("the schedule has no value for iterations %lld", s->iterations);
            hv[h] = y->sched[s->iterations];
        }
    }
    /* ADAM-TF2-HYPER-1: lr, betas and decay stored as float32; then everything cast to the dtype
     * (ADAM-DTYPE-1), and the decayed lr (ADAM-HYPER-4) rounded to it as well. */
    double decay = round_to(round_to(s->decay, F32), s->dtype);
    for (int h = 0; h < 4; h++) hv[h] = round_to(h == 3 ? hv[h] : round_to(hv[h], F32), s->dtype);
    if (decay > 0) hv[0] = round_to(hv[0] / (1.0 + decay * (double)s->iterations), s->dtype);

    /* Read every gradient before changing anything, so a bad request leaves the session as it was. */
    int n = jcount(grads), used = 0, ok = 1;
    Var **vs = xrealloc(NULL, (size_t)n * sizeof *vs);
    double **gs = xrealloc(NULL, (size_t)n * sizeof *gs);
    for (J *k = grads->kid; k; k = k->next) {
        Var *v = find_var(s, k->key, k->keylen);
        if (!v) { ok = 0; break; }
        if (k->type == J_NULL) continue;  /* ADAM-ITER-2: not updated, no slots */
        for (int i = 0; i < used; i++) if (vs[i] == v) { ok = fail("variable '%s' given twice", v->name); break; }
        if (!ok || !(gs[used] = read_gradient(k, v, s->dtype))) { ok = 0; break; }
        vs[used++] = v;
    }
    if (ok && !used) ok = fail("ValueError: no gradients provided for any variable (ADAM-ITER-3)");
    if (ok) {
        long long t = s->iterations + 1;  /* ADAM-STEP-1 */
        double bc1 = one_minus_pow(hv[1], t), bc2 = one_minus_pow(hv[2], t);
        double alpha = hv[0] * sqrt(bc2) / bc1;  /* ADAM-UPDATE-1, one alpha for every variable (ADAM-MULTI-1) */
        for (int i = 0; i < used; i++) {
            Var *v = vs[i];
            if (!v->m) v->m = zeros(v->sh.n);  /* ADAM-INIT-1, at the first update (ADAM-MULTI-2) */
            if (!v->v) v->v = zeros(v->sh.n);
            if (s->amsgrad && !v->vhat) v->vhat = zeros(v->sh.n);
            update(v, gs[i], s->dtype, s->amsgrad, hv[0], hv[1], hv[2], hv[3], alpha, bc1, bc2);
        }
        s->iterations++;  /* ADAM-ITER-1 */
    }
    for (int i = 0; i < used; i++) free(gs[i]);
    free(vs);
    free(gs);
    return ok;
}

static int op_read(const J *req, Buf *out) {
    Session *s = find_session(req, NULL);
    if (!s) return 0;
    putf(out, ",\"iterations\":%lld,\"variables\":{", s->iterations);
    for (size_t i = 0; i < s->nvars; i++) {
        Var *v = &s->vars[i];
        double *slot[3] = {v->m, v->v, v->vhat};
        const char *sname[3] = {"m", "v", "vhat"};
        if (i) puts_(out, ",");
        put_jstr(out, v->name, v->namelen);
        puts_(out, ":{\"variable\":");
        put_array(out, v->x, &v->sh, s->dtype);
        for (int k = 0; k < 3; k++) {
            putf(out, ",\"%s\":", sname[k]);
            if (slot[k]) put_array(out, slot[k], &v->sh, s->dtype);
            else puts_(out, "null");
        }
        puts_(out, "}");
    }
    puts_(out, "}");
    return 1;
}

static int op_load(const J *req, Buf *out) {
    Session *s = find_session(req, NULL);
    J *vars = jget(req, "variables");
    static const char *names[4] = {"variable", "m", "v", "vhat"};
    long long it;
    int ok = 1, n = 0;
    (void)out;
    if (!s || !jint(jget(req, "iterations"), 0, "iterations", &it)) return 0;
    if (!vars || vars->type != J_OBJ) return fail("'variables' must be an object");
    /* Everything is decoded first and taken only if all of it is valid, so a bad load changes nothing.
     * A null slot is taken as NULL: it does not exist yet and is created as zeros at the first update. */
    size_t most = 4 * (size_t)jcount(vars);
    double ***dst = xrealloc(NULL, most * sizeof *dst), **val = xrealloc(NULL, most * sizeof *val);
    for (J *k = vars->kid; k && ok; k = k->next) {
        Var *v = find_var(s, k->key, k->keylen);
        if (!v) { ok = 0; break; }
        if (k->type != J_OBJ) { ok = fail("load: variables.%s is not an object", v->name); break; }
        double **slot[4] = {&v->x, &v->m, &v->v, &v->vhat};
        for (int f = 0; f < (s->amsgrad ? 4 : 3) && ok; f++) {  /* no vhat without AMSGrad */
            J *a = jget(k, names[f]);
            Shape sh;
            if (f < 3 && !a) { ok = fail("load: variables.%s.%s is missing", v->name, names[f]); break; }
            dst[n] = slot[f];
            val[n] = NULL;
            if (a && a->type != J_NULL) {
                if (!(val[n] = read_array(a, s->dtype, &sh, names[f]))) { ok = 0; break; }
                if (!same_shape(&sh, &v->sh)) {
                    ok = fail("load: %s of '%s' has the wrong shape", names[f], v->name);
                    n++;  /* so that it is freed */
                    break;
                }
            } else if (f == 0) { ok = fail("load: variables.%s.variable is null", v->name); break; }
            n++;
        }
    }
    for (int i = 0; i < n; i++) {
        if (ok) { free(*dst[i]); *dst[i] = val[i]; }
        else free(val[i]);
    }
    if (ok) s->iterations = it;
    free(dst);
    free(val);
    return ok;
}

static int op_close(const J *req, Buf *out) {
    size_t i;
    Session *s = find_session(req, &i);
    (void)out;
    if (!s) return 0;
    session_free(s);
    sessions[i] = sessions[--nsessions];
    return 1;
}

/* ---------- the loop ---------- */

static void respond(char *line) {
    static Buf out;
    Parser p = {line, 0};
    J *req = parse_value(&p);
    long long id = 0;  /* an id that cannot be read is answered as 0 (ids are >= 0) */
    int ok = 0;
    out.n = 0;
    skip_ws(&p);
    if (req && req->type == J_OBJ) {
        J *op = jget(req, "op");
        static const char *names[] = {"hello", "create", "apply", "read", "load", "close"};
        static int (*const fns[])(const J *, Buf *) = {op_hello, op_create, op_apply, op_read, op_load, op_close};
        int f = -1;
        for (int k = 0; op && op->type == J_STR && k < 6; k++) if (!strcmp(op->str, names[k])) f = k;
        if (!jint(jget(req, "id"), 0, "id", &id)) id = 0;
        else if (*p.s) fail("trailing text after the JSON object");
        else if (f < 0) fail("unknown op");
        else ok = fns[f](req, &out);
    } else if (req) fail("the request is not a JSON object");
    Buf head = {0, 0, 0};
    putf(&head, "{\"id\":%lld,\"status\":", id);
    if (ok) {
        puts_(&head, "\"ok\"");
        fwrite(head.p, 1, head.n, stdout);
        fwrite(out.p ? out.p : "", 1, out.n, stdout);
    } else {
        puts_(&head, "\"error\",\"message\":");
        put_jstr(&head, errmsg, strlen(errmsg));
        fwrite(head.p, 1, head.n, stdout);
    }
    fputs("}\n", stdout);
    fflush(stdout);
    free(head.p);
    jfree(req);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--variant=algorithm1-epsilon")) variant_alg1 = 1;
        else {
            fprintf(stderr, "adam.c: unknown argument %s (known: --variant=algorithm1-epsilon)\n", argv[i]);
            return 2;
        }
    }
    memset(b64val, -1, sizeof b64val);
    for (int k = 0; k < 64; k++) b64val[(unsigned char)B64[k]] = (signed char)k;
    size_t cap = 1 << 16, n;
    char *line = xrealloc(NULL, cap);
    for (;;) {  /* one line of any length: fgets in chunks into a growing buffer */
        n = 0;
        line[0] = 0;
        while (fgets(line + n, (int)(cap - n > 1 << 30 ? 1 << 30 : cap - n), stdin)) {
            n += strlen(line + n);
            if (n && line[n - 1] == '\n') break;
            if (cap - n < 2) line = xrealloc(line, cap *= 2);
        }
        if (!n) break;  /* end of stdin */
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
        if (k < n) respond(line);  /* a blank line is not a request */
    }
    free(line);
    for (size_t i = 0; i < nsessions; i++) session_free(sessions[i]);
    free(sessions);
    return 0;
}
