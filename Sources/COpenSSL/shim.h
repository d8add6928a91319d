// The system's OpenSSL 3 (Debian `libssl-dev`), as the `TLS` module sees it. OpenSSL exposes
// several calls as macros, which Swift cannot import: each one used is wrapped here in a
// `static inline` function of the same meaning.
#ifndef SWITCHYARD_COPENSSL_SHIM_H
#define SWITCHYARD_COPENSSL_SHIM_H

#include <string.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>
#include <openssl/rand.h>

static inline int sy_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline long sy_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long sy_ctx_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}
static inline int sy_ctx_set_servername_callback(SSL_CTX *ctx, int (*cb)(SSL *, int *, void *), void *arg) {
    if (!SSL_CTX_set_tlsext_servername_callback(ctx, cb)) return 0;
    return (int)SSL_CTX_set_tlsext_servername_arg(ctx, arg);
}
static inline int sy_ctx_set_ticket_keys(SSL_CTX *ctx, unsigned char *keys, int length) {
    return (int)SSL_CTX_set_tlsext_ticket_keys(ctx, keys, length);
}
static inline int sy_ctx_set1_groups_list(SSL_CTX *ctx, const char *list) {
    return (int)SSL_CTX_set1_groups_list(ctx, list);
}
static inline int sy_set_app_data(SSL *ssl, void *data) { return SSL_set_app_data(ssl, data); }
static inline void *sy_get_app_data(const SSL *ssl) { return SSL_get_app_data(ssl); }

/// SSL_OP_ENABLE_KTLS, 0 when the headers do not know it.
static inline uint64_t sy_op_enable_ktls(void) {
#ifdef SSL_OP_ENABLE_KTLS
    return SSL_OP_ENABLE_KTLS;
#else
    return 0;
#endif
}
static inline uint64_t sy_op_no_renegotiation(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t sy_op_cipher_server_preference(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }

/// Whether the kernel encrypts what this connection sends (1) and decrypts what it receives (1).
static inline int sy_ktls_send(SSL *ssl) {
#ifndef OPENSSL_NO_KTLS
    return BIO_get_ktls_send(SSL_get_wbio(ssl)) ? 1 : 0;
#else
    (void)ssl; return 0;
#endif
}
static inline int sy_ktls_recv(SSL *ssl) {
#ifndef OPENSSL_NO_KTLS
    return BIO_get_ktls_recv(SSL_get_rbio(ssl)) ? 1 : 0;
#else
    (void)ssl; return 0;
#endif
}

static inline int sy_x509_name_print(X509_NAME *name, char *out, int size) {
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) return 0;
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    int n = BIO_read(bio, out, size - 1);
    if (n < 0) n = 0;
    out[n] = 0;
    BIO_free(bio);
    return n;
}

/// Seconds from now until the certificate's notAfter (negative once expired).
static inline long long sy_x509_seconds_to_expiry(X509 *cert) {
    int days = 0, seconds = 0;
    if (!ASN1_TIME_diff(&days, &seconds, NULL, X509_get0_notAfter(cert))) return 0;
    return (long long)days * 86400 + seconds;
}

/// The DNS names of the subjectAltName extension, written NUL-separated into `out`;
/// returns the bytes written.
static inline int sy_x509_dns_names(X509 *cert, char *out, int size) {
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!names) return 0;
    int used = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
        if (name->type != GEN_DNS) continue;
        const unsigned char *text = ASN1_STRING_get0_data(name->d.dNSName);
        int length = ASN1_STRING_length(name->d.dNSName);
        if (used + length + 1 > size) break;
        memcpy(out + used, text, length);
        used += length;
        out[used++] = 0;
    }
    GENERAL_NAMES_free(names);
    return used;
}

static inline int sy_x509_common_name(X509 *cert, char *out, int size) {
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, size);
    return n < 0 ? 0 : n;
}

#endif
