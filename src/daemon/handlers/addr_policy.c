/*
 * The address classes of addr_policy.h: fixed IPv4 and IPv6 prefixes, IPv6
 * forms that embed an IPv4 address unwrapped first. No state, no DNS.
 */
#include "daemon/handlers/addr_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* a (host order) is in net/bits. */
static int in4(uint32_t a, uint32_t net, int bits) {
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (a & mask) == (net & mask);
}

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

static jobq_addr_class classify4(uint32_t a) {
    if (in4(a, V4(0, 0, 0, 0), 8)) return JOBQ_ADDR_UNSPECIFIED;
    if (in4(a, V4(127, 0, 0, 0), 8)) return JOBQ_ADDR_LOOPBACK;
    if (in4(a, V4(169, 254, 0, 0), 16)) return JOBQ_ADDR_LINK_LOCAL;
    if (in4(a, V4(10, 0, 0, 0), 8) || in4(a, V4(172, 16, 0, 0), 12) || in4(a, V4(192, 168, 0, 0), 16))
        return JOBQ_ADDR_PRIVATE;
    if (in4(a, V4(100, 64, 0, 0), 10)) return JOBQ_ADDR_SHARED;
    return JOBQ_ADDR_PUBLIC;
}

/* The IPv4 address in the last four bytes of b, host order. */
static uint32_t tail4(const uint8_t *b) { return V4(b[12], b[13], b[14], b[15]); }

static jobq_addr_class classify6(const uint8_t b[16]) {
    static const uint8_t zero[16];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (memcmp(b, zero, 16) == 0) return JOBQ_ADDR_UNSPECIFIED;
    if (memcmp(b, zero, 15) == 0 && b[15] == 1) return JOBQ_ADDR_LOOPBACK;
    /* IPv4-compatible (::a.b.c.d, deprecated), IPv4-mapped, NAT64 */
    if (memcmp(b, zero, 12) == 0 || memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return classify4(tail4(b));
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return JOBQ_ADDR_LINK_LOCAL; /* fe80::/10 */
    if ((b[0] & 0xfe) == 0xfc) return JOBQ_ADDR_PRIVATE;                     /* fc00::/7 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return JOBQ_ADDR_PRIVATE;    /* fec0::/10 */
    return JOBQ_ADDR_PUBLIC;
}

jobq_addr_class jobq_addr_policy_classify(const struct sockaddr *sa, size_t len) {
    if (!sa || len < sizeof sa->sa_family) return JOBQ_ADDR_NOT_IP;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in); /* sa may be unaligned for sockaddr_in */
        return classify4(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        return classify6(in6.sin6_addr.s6_addr);
    }
    return JOBQ_ADDR_NOT_IP;
}

const char *jobq_addr_policy_describe(jobq_addr_class c) {
    switch (c) {
    case JOBQ_ADDR_PUBLIC: return "a public address";
    case JOBQ_ADDR_UNSPECIFIED: return "an unspecified address";
    case JOBQ_ADDR_LOOPBACK: return "a loopback address";
    case JOBQ_ADDR_LINK_LOCAL: return "a link-local address";
    case JOBQ_ADDR_PRIVATE: return "a private address";
    case JOBQ_ADDR_SHARED: return "a shared (carrier-grade NAT) address";
    case JOBQ_ADDR_NOT_IP: break;
    }
    return "not an IP address";
}

char *jobq_addr_policy_format(const struct sockaddr *sa, size_t len, char *buf, size_t size) {
    const char *ok = NULL;
    if (size == 0) return buf;
    if (jobq_addr_policy_classify(sa, len) == JOBQ_ADDR_NOT_IP) {
        snprintf(buf, size, "(not an IP address)");
        return buf;
    }
    {
        if (sa->sa_family == AF_INET) {
            struct sockaddr_in in;
            memcpy(&in, sa, sizeof in);
            ok = inet_ntop(AF_INET, &in.sin_addr, buf, (socklen_t)size);
        } else {
            struct sockaddr_in6 in6;
            memcpy(&in6, sa, sizeof in6);
            ok = inet_ntop(AF_INET6, &in6.sin6_addr, buf, (socklen_t)size);
        }
    }
    if (!ok) snprintf(buf, size, "(address too long to show)");
    return buf;
}
