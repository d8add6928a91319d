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
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <pthread.h>

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
static inline int sy_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
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

/// Session ticket keys held in memory: the current key encrypts new tickets; it and the one
/// before it decrypt (a ticket under the previous key resumes and is renewed). Rotation and
/// use may happen on different threads, hence the lock.
typedef struct {
    pthread_rwlock_t lock;
    unsigned char name[2][16];
    unsigned char aes[2][32];
    unsigned char hmac[2][32];
    int count;
} sy_ticket_keys;

/// Makes the previous key the current one's and draws a new current key; 1 on success.
static inline int sy_ticket_keys_rotate(sy_ticket_keys *keys) {
    unsigned char name[16], aes[32], hmac[32];
    if (RAND_bytes(name, 16) != 1 || RAND_priv_bytes(aes, 32) != 1 || RAND_priv_bytes(hmac, 32) != 1) return 0;
    pthread_rwlock_wrlock(&keys->lock);
    memcpy(keys->name[1], keys->name[0], 16);
    memcpy(keys->aes[1], keys->aes[0], 32);
    memcpy(keys->hmac[1], keys->hmac[0], 32);
    memcpy(keys->name[0], name, 16);
    memcpy(keys->aes[0], aes, 32);
    memcpy(keys->hmac[0], hmac, 32);
    keys->count = keys->count < 2 ? keys->count + 1 : 2;
    pthread_rwlock_unlock(&keys->lock);
    OPENSSL_cleanse(aes, 32);
    OPENSSL_cleanse(hmac, 32);
    return 1;
}

static inline sy_ticket_keys *sy_ticket_keys_new(void) {
    sy_ticket_keys *keys = OPENSSL_zalloc(sizeof(sy_ticket_keys));
    if (!keys) return NULL;
    pthread_rwlock_init(&keys->lock, NULL);
    if (!sy_ticket_keys_rotate(keys)) {
        pthread_rwlock_destroy(&keys->lock);
        OPENSSL_free(keys);
        return NULL;
    }
    return keys;
}

static inline void sy_ticket_keys_free(sy_ticket_keys *keys) {
    if (!keys) return;
    pthread_rwlock_destroy(&keys->lock);
    OPENSSL_clear_free(keys, sizeof(sy_ticket_keys));
}

/// OpenSSL's ticket callback: AES-256-CBC with HMAC-SHA256 under the keys in the context's
/// app data. Returns 1 (encrypted, or decrypted with the current key), 2 (decrypted with the
/// previous key: issue a new ticket), 0 (unknown key: full handshake), -1 (error).
static int sy_ticket_callback(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cipher,
                              EVP_MAC_CTX *mac, int encrypt) {
    sy_ticket_keys *keys = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!keys) return -1;
    int rc = -1;
    pthread_rwlock_rdlock(&keys->lock);
    int index = -1;
    if (encrypt) {
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) == 1) {
            index = 0;
            memcpy(key_name, keys->name[0], 16);
        }
    } else {
        for (int i = 0; i < keys->count; i++) {
            if (memcmp(key_name, keys->name[i], 16) == 0) { index = i; break; }
        }
        if (index < 0) rc = 0;
    }
    if (index >= 0) {
        OSSL_PARAM params[3];
        params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, keys->hmac[index], 32);
        params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
        params[2] = OSSL_PARAM_construct_end();
        int ok = encrypt ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, keys->aes[index], iv)
                         : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, keys->aes[index], iv);
        if (ok == 1 && EVP_MAC_CTX_set_params(mac, params) == 1) rc = index == 0 ? 1 : 2;
    }
    pthread_rwlock_unlock(&keys->lock);
    return rc;
}

/// Makes `ctx` issue and accept tickets under `keys` (which must outlive it).
static inline int sy_ctx_use_ticket_keys(SSL_CTX *ctx, sy_ticket_keys *keys) {
    if (!SSL_CTX_set_app_data(ctx, keys)) return 0;
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, sy_ticket_callback) == 1 ? 1 : 0;
}

#endif
