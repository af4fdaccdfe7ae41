/* Keyed tokens over an Arrow string-view column: HMAC-SHA256 (RFC 2104) of each value,
 * the first 16 bytes of the MAC written as a token "<prefix><32 lower-case hex>" into a new
 * string-view column and, when asked, as 16 bytes per row (the token body: read big-endian,
 * the 128-bit integer the vault sorts and compares by).
 *
 * Why native: polars-hash computes the same HMAC but re-derives the key's inner and outer
 * pads for every value and formats 64 hex digits per value, about 0.3 us per value; here
 * the padded key is hashed once, so a value costs two SHA-256 compressions (OpenSSL's,
 * with the CPU's SHA extensions where it has them). The bytes are the same:
 * tests/test_native_hmac.py compares every token with polars-hash and Python's hmac.
 *
 * The same library gathers a vault block's plaintext (pgov_gather_plain): a first filing
 * reads every value once in token order, at random in the column, and those reads are most
 * of its time; here they are prefetched and copied in one pass.
 *
 * Called through ctypes (engine/pseudonym/native_hmac.py), which releases the GIL for the
 * call; the column is split between POSIX threads started here (Python threads started
 * from inside a Polars UDF would register Polars' worker threads with Python for good).
 * No Python API, no allocation: the caller owns every buffer. Key material lives in the
 * caller's buffers and on these threads' stacks only, wiped before returning.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static const char HEX[] = "0123456789abcdef";

static void pads(const uint8_t *key, size_t key_len, SHA256_CTX *inner, SHA256_CTX *outer) {
    uint8_t block[64], k[64];
    memset(k, 0, sizeof k);
    if (key_len > 64) {
        SHA256(key, key_len, k);
    } else {
        memcpy(k, key, key_len);
    }
    for (int i = 0; i < 64; i++) block[i] = k[i] ^ 0x36;
    SHA256_Init(inner);
    SHA256_Update(inner, block, 64);
    for (int i = 0; i < 64; i++) block[i] = k[i] ^ 0x5c;
    SHA256_Init(outer);
    SHA256_Update(outer, block, 64);
    memset(k, 0, sizeof k);
    memset(block, 0, sizeof block);
}

static int is_valid(const uint8_t *validity, int64_t bit) {
    return validity == NULL || ((validity[bit >> 3] >> (bit & 7)) & 1);
}

/* Where row r's value is: its bytes and length, or -1 when its view is malformed. */
static int32_t value_at(const uint8_t *views, const uint8_t *const *buffers,
                        const int64_t *buffer_sizes, int64_t n_buffers, int64_t r,
                        const uint8_t **data) {
    const uint8_t *v = views + 16 * r;
    int32_t len;
    memcpy(&len, v, 4);
    if (len < 0) return -1;
    if (len <= 12) {
        *data = v + 4;
        return len;
    }
    int32_t idx, off;
    memcpy(&idx, v + 8, 4);
    memcpy(&off, v + 12, 4);
    if (idx < 0 || idx >= n_buffers || off < 0 || (int64_t)off + len > buffer_sizes[idx])
        return -1;
    *data = buffers[idx] + off;
    return len;
}

/* Rows [0, n) of a string-view array whose views start at `views` (16 bytes each, already
 * advanced to the array's offset) and whose validity bit of row i is bit `validity_offset`
 * + i. `buffers` are the array's variadic data buffers. Out: `out_views` (16 bytes per row),
 * `out_data` (n * (prefix_len + 32) bytes, the out array's only data buffer, index 0), and
 * with `out_body` non-NULL the body (16 bytes per row). A null row gets a zeroed view (the
 * caller passes the input's validity on). Returns 0, or -1 when an input view is
 * malformed (a buffer index or range outside the array: nothing read outside it). */
struct hmac_job {
    SHA256_CTX inner, outer;
    const uint8_t *views, *const *buffers, *validity, *prefix;
    const int64_t *buffer_sizes;
    int64_t n_buffers, validity_offset, start, end;
    int32_t prefix_len;
    uint8_t *out_views, *out_data, *out_body;
    int rc;
};

/* Rows [start, end) of one job: see pgov_hmac_tokens. */
static void *hmac_rows(void *arg) {
    struct hmac_job *j = arg;
    SHA256_CTX ctx;
    uint8_t digest[32];
    const int32_t width = j->prefix_len + 32;
    j->rc = 0;
    for (int64_t i = j->start; i < j->end; i++) {
        uint8_t *ov = j->out_views + 16 * i;
        if (!is_valid(j->validity, j->validity_offset + i)) {
            memset(ov, 0, 16);
            if (j->out_body) memset(j->out_body + 16 * i, 0, 16);
            continue;
        }
        const uint8_t *data;
        int32_t len = value_at(j->views, j->buffers, j->buffer_sizes, j->n_buffers, i, &data);
        if (len < 0) {
            j->rc = -1;
            break;
        }
        ctx = j->inner;
        SHA256_Update(&ctx, data, (size_t)len);
        SHA256_Final(digest, &ctx);
        ctx = j->outer;
        SHA256_Update(&ctx, digest, 32);
        SHA256_Final(digest, &ctx);

        uint8_t *t = j->out_data + (int64_t)width * i;
        memcpy(t, j->prefix, (size_t)j->prefix_len);
        for (int b = 0; b < 16; b++) {
            t[j->prefix_len + 2 * b] = (uint8_t)HEX[digest[b] >> 4];
            t[j->prefix_len + 2 * b + 1] = (uint8_t)HEX[digest[b] & 15];
        }
        int32_t zero = 0, offset = (int32_t)(width * i);
        memcpy(ov, &width, 4);
        memcpy(ov + 4, t, 4);
        memcpy(ov + 8, &zero, 4);
        memcpy(ov + 12, &offset, 4);
        if (j->out_body) memcpy(j->out_body + 16 * i, digest, 16);
    }
    OPENSSL_cleanse(&ctx, sizeof ctx);
    OPENSSL_cleanse(digest, sizeof digest);
    return NULL;
}

#define MAX_THREADS 16

/* Tokens of rows [0, n) on `threads` threads (POSIX threads started here, so the caller
 * starts none: a Polars UDF calls this from Polars' own worker threads). The pads are
 * hashed once and shared read-only. */
int pgov_hmac_tokens(const uint8_t *key, int64_t key_len, int64_t n, const uint8_t *views,
                     const uint8_t *const *buffers, const int64_t *buffer_sizes,
                     int64_t n_buffers, const uint8_t *validity, int64_t validity_offset,
                     const uint8_t *prefix, int32_t prefix_len, uint8_t *out_views,
                     uint8_t *out_data, uint8_t *out_body, int32_t threads) {
    if (prefix_len < 0 || key_len < 0 || n < 0) return -1;
    if ((int64_t)(prefix_len + 32) * n >= INT32_MAX) return -1; /* 32-bit view offsets */
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (n < 65536) threads = 1; /* a thread costs more than it saves on a small column */
    struct hmac_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    SHA256_CTX inner, outer;
    pads(key, (size_t)key_len, &inner, &outer);
    for (int t = 0; t < threads; t++) {
        struct hmac_job *j = &jobs[t];
        j->inner = inner;
        j->outer = outer;
        j->views = views, j->buffers = buffers, j->validity = validity, j->prefix = prefix;
        j->buffer_sizes = buffer_sizes, j->n_buffers = n_buffers;
        j->validity_offset = validity_offset, j->prefix_len = prefix_len;
        j->out_views = out_views, j->out_data = out_data, j->out_body = out_body;
        j->start = n * t / threads;
        j->end = n * (t + 1) / threads;
        j->rc = 0;
    }
    for (int t = 1; t < threads; t++) {
        started[t] = pthread_create(&tids[t], NULL, hmac_rows, &jobs[t]) == 0;
        if (!started[t]) hmac_rows(&jobs[t]); /* no thread to be had: do it here */
    }
    hmac_rows(&jobs[0]);
    int rc = jobs[0].rc;
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(tids[t], NULL);
        if (jobs[t].rc != 0) rc = jobs[t].rc;
    }
    OPENSSL_cleanse(jobs, sizeof jobs);
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
    return rc;
}

/* How far ahead the gather asks for memory: the view of row i + 2 * AHEAD and the bytes of
 * row i + AHEAD (whose view arrived by then) are requested while row i is copied, so
 * tens of cache misses are in flight instead of one at a time. */
#define AHEAD 16

/* A vault block's plaintext (blocks.py): the UTF-8 lengths of the values at `rows`
 * (uint32, little-endian) then their bytes, in the order of `rows`, gathered from a
 * string-view array without nulls into `out` (`capacity` bytes). Returns the plaintext's
 * size, or -1: a row out of range, a malformed view or too small a buffer (nothing is
 * written past `capacity`, nothing read outside the column). The rows come in token order,
 * which is random in the column: the reads are prefetched (AHEAD). */
int64_t pgov_gather_plain(const uint8_t *views, int64_t n_views, const uint8_t *const *buffers,
                          const int64_t *buffer_sizes, int64_t n_buffers, const int64_t *rows,
                          int64_t n_rows, uint8_t *out, int64_t capacity) {
    int64_t total = 4 * n_rows;
    for (int64_t i = 0; i < n_rows; i++) {
        if (rows[i] < 0 || rows[i] >= n_views) return -1;
    }
    for (int64_t i = 0; i < n_rows; i++) {
        if (i + 2 * AHEAD < n_rows) __builtin_prefetch(views + 16 * rows[i + 2 * AHEAD]);
        if (i + AHEAD < n_rows) {
            const uint8_t *ahead;
            if (value_at(views, buffers, buffer_sizes, n_buffers, rows[i + AHEAD], &ahead) > 12)
                __builtin_prefetch(ahead);
        }
        const uint8_t *data;
        int32_t len = value_at(views, buffers, buffer_sizes, n_buffers, rows[i], &data);
        if (len < 0 || total + len > capacity) return -1;
        for (int b = 0; b < 4; b++) out[4 * i + b] = (uint8_t)((uint32_t)len >> (8 * b));
        memcpy(out + total, data, (size_t)len);
        total += len;
    }
    return total;
}
