#include "net/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <unistd.h>

int tg_listener_socket(const struct sockaddr *addr, socklen_t len)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (addr->sa_family == AF_INET6) /* "[::]:port" serves v6 only; v4 is its own listener */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, addr, len) < 0 || listen(fd, 511) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

int tg_listener_open(uv_loop_t *loop, uv_tcp_t *tcp, const struct sockaddr *addr, socklen_t len)
{
    int fd = tg_listener_socket(addr, len);
    if (fd < 0)
        return fd;
    uv_tcp_init(loop, tcp);
    int r = uv_tcp_open(tcp, fd);
    if (r < 0) {
        close(fd);
        return r;
    }
    return 0;
}
