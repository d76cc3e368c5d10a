/*
 * jobq_err: an error class and a human message travelling together, filled by
 * the function that failed and read (logged, printed) by the one that decides.
 */
#ifndef JOBQ_ERR_H
#define JOBQ_ERR_H

enum jobq_err_code {
    JOBQ_E_NONE = 0,
    JOBQ_E_INVALID,  /* bad input from a user: a value, a payload, a flag */
    JOBQ_E_CONFIG,   /* bad config file or line */
    JOBQ_E_IO,       /* connection or file broken; retry after reconnect */
    JOBQ_E_REPLY,    /* the server answered with an error reply (other than below) */
    JOBQ_E_NOMEM,
    JOBQ_E_NOTFOUND,
    JOBQ_E_OOM,      /* Redis refused a write: maxmemory reached (OOM reply) */
    JOBQ_E_NOPERM,   /* Redis refused a command or key to this user (NOPERM reply) */
    JOBQ_E_READONLY, /* the server is a read-only replica (READONLY reply) */
    JOBQ_E_FENCED,   /* this daemon's lease on a queue has expired: it must not take or commit */
    JOBQ_E_REPLICAS, /* a write was not acknowledged by [redis] wait_replicas replicas in time */
};

/* True for the codes of a server error reply (REPLY, OOM, NOPERM, READONLY):
 * the connection itself still works. */
#define JOBQ_ERR_IS_REPLY(code) \
    ((code) == JOBQ_E_REPLY || (code) == JOBQ_E_OOM || (code) == JOBQ_E_NOPERM || (code) == JOBQ_E_READONLY)

typedef struct jobq_err {
    int code;      /* enum jobq_err_code */
    char msg[256]; /* human-readable, no trailing newline */
} jobq_err;

/* Fill err (which may be NULL) with code and a printf-formatted message. */
void jobq_err_set(jobq_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset err (may be NULL) to JOBQ_E_NONE with an empty message. */
void jobq_err_clear(jobq_err *err);

#endif
