/*
 * Which network an address belongs to, for the wordcount SSRF guard
 * ([wordcount] deny_private): a pure classifier of a struct sockaddr, with no
 * DNS and no state, so it can be unit tested on every range.
 */
#ifndef JOBQ_HANDLERS_ADDR_POLICY_H
#define JOBQ_HANDLERS_ADDR_POLICY_H

#include <stddef.h>
#include <sys/socket.h>

typedef enum jobq_addr_class {
    JOBQ_ADDR_PUBLIC = 0,     /* none of the ranges below: allowed */
    JOBQ_ADDR_UNSPECIFIED,    /* 0.0.0.0/8 ("this network"), :: */
    JOBQ_ADDR_LOOPBACK,       /* 127.0.0.0/8, ::1 */
    JOBQ_ADDR_LINK_LOCAL,     /* 169.254.0.0/16, fe80::/10 */
    JOBQ_ADDR_PRIVATE,        /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 */
    JOBQ_ADDR_SHARED,         /* 100.64.0.0/10 (carrier-grade NAT, RFC 6598) */
    JOBQ_ADDR_NOT_IP,         /* not AF_INET/AF_INET6, or len too short */
} jobq_addr_class;

/* Class of the address sa (len bytes; AF_INET or AF_INET6, the port is
 * ignored). An IPv6 address that embeds an IPv4 one, IPv4-mapped
 * (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, other than :: and ::1) or
 * in the NAT64 well-known prefix (64:ff9b::a.b.c.d), has the class of that
 * IPv4 address. A NULL sa, or len too short for its family, is
 * JOBQ_ADDR_NOT_IP. */
jobq_addr_class jobq_addr_policy_classify(const struct sockaddr *sa, size_t len);

/* "a loopback address", "a private address"...: a static string for
 * messages, for every class (JOBQ_ADDR_PUBLIC: "a public address"). */
const char *jobq_addr_policy_describe(jobq_addr_class c);

/* The address of sa as text (inet_ntop: "127.0.0.1", "::ffff:10.0.0.1") in
 * buf of size bytes (46 is enough for any IP address); "(not an IP
 * address)" when it is none. Returns buf. */
char *jobq_addr_policy_format(const struct sockaddr *sa, size_t len, char *buf, size_t size);

#endif
