/* gRPC-Web body codec: base64 ("grpc-web-text") decoding and encoding, and
 * the gRPC message framing check of a request body. Pure and incremental: no
 * I/O, no allocation; each state is a small struct the caller keeps between
 * slices of the body, split anywhere.
 *
 * Commit model: every call takes the state by pointer and updates it. A
 * caller that may have to hand the same input again (its consumer refused
 * the output) works on a copy and assigns it back once the output was taken.
 *
 * Base64 (RFC 4648 §4, standard alphabet) as the gRPC-Web protocol uses it:
 * the stream is a sequence of 4-character groups and each group may be
 * padded ('=' in its last one or two places), because clients encode each
 * message on its own and concatenate the results. ASCII whitespace (SP, HT,
 * CR, LF) between characters is skipped wherever it appears, as MIME
 * line-wrapped encoders produce it (RFC 2045 §6.8); any other byte outside
 * the alphabet, a '=' in the first two places of a group, or "x=y" is
 * invalid. At the end of the body a partial group is invalid (padding is
 * mandatory, as in Envoy's grpc_web filter). */
#ifndef TG_HTTP_GRPC_WEB_CODEC_H
#define TG_HTTP_GRPC_WEB_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TG_GWC_OK = 0,
    TG_GWC_BAD_BASE64 = -1, /* a byte or group that is not base64 */
    TG_GWC_BAD_FRAME = -2,  /* a request frame whose flags are not 0 or 1 */
    TG_GWC_TRUNCATED = -3   /* the body ended inside a base64 group or a frame */
};

/* Base64 decoder: the characters of a group not yet complete. */
typedef struct tg_gwc_dec {
    char q[4];
    uint8_t nq;
} tg_gwc_dec_t;

/* Base64 encoder: input bytes not yet a whole 3-byte group. */
typedef struct tg_gwc_enc {
    unsigned char rem[3];
    uint8_t nrem;
} tg_gwc_enc_t;

/* gRPC message framing: 1 flag byte, 4 length bytes (big-endian), payload. */
typedef struct tg_gwc_frames {
    unsigned char hdr[5];
    uint8_t nhdr;       /* header bytes seen of the current frame */
    uint32_t left;      /* payload bytes still due of the current frame */
    uint64_t frames;    /* frames whose header was complete */
} tg_gwc_frames_t;

/* Decodes base64 from in[0..n) into out[0..cap). Stops before a group whose
 * 3 bytes would not fit, so cap >= 3 always makes progress; *used is the input
 * consumed (whitespace and the characters now held in st included). Returns
 * the bytes written, or TG_GWC_BAD_BASE64 (st and *used then unspecified). */
long tg_gwc_decode(tg_gwc_dec_t *st, const char *in, size_t n, size_t *used, unsigned char *out,
                   size_t cap);

/* At the end of the body: TG_GWC_OK, or TG_GWC_TRUNCATED when a group is incomplete. */
int tg_gwc_decode_end(const tg_gwc_dec_t *st);

/* Output bound of tg_gwc_encode for n input bytes. */
#define TG_GWC_ENCODED_MAX(n) (((n) + 2) / 3 * 4 + 4)

/* Encodes st's held bytes and p[0..n) into out (TG_GWC_ENCODED_MAX(n)
 * bytes); up to 2 trailing bytes stay in st unless `final`, which pads the
 * last group. Returns the output length (a multiple of 4). */
size_t tg_gwc_encode(tg_gwc_enc_t *st, const unsigned char *p, size_t n, bool final, char *out);

/* Follows the framing of request bytes p[0..n). Returns TG_GWC_OK, or
 * TG_GWC_BAD_FRAME for a frame whose flag byte is not 0 (plain) or 1
 * (compressed): a gRPC request carries messages only, never the gRPC-Web
 * trailer frame (0x80) or reserved bits. */
int tg_gwc_frames_feed(tg_gwc_frames_t *st, const unsigned char *p, size_t n);

/* At the end of the body: TG_GWC_OK at a frame boundary, else TG_GWC_TRUNCATED. */
int tg_gwc_frames_end(const tg_gwc_frames_t *st);

#endif
