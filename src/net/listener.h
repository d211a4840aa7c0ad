/* Listening sockets. Each worker opens its own socket per address with
 * SO_REUSEPORT, so the kernel spreads connections over workers and no accept
 * lock is needed. */
#ifndef TG_NET_LISTENER_H
#define TG_NET_LISTENER_H

#include <sys/socket.h>
#include <uv.h>

/* A bound, listening, non-blocking SO_REUSEPORT socket for `addr`: the fd,
 * or a negative errno-style code. (Reload opens these off the workers' loops
 * and hands them over.) */
int tg_listener_socket(const struct sockaddr *addr, socklen_t len);
/* Opens, binds and listens on `addr` and wraps it into `tcp` (initialised on
 * `loop`). Returns 0 or a negative errno-style code. */
int tg_listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const struct sockaddr *addr, socklen_t len);

#endif
