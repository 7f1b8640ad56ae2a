#include "bench/loadgen_cxx/event_loop.h"

#include <sys/epoll.h>
#include <unistd.h>

namespace rusd::loadgen {

EventLoop::EventLoop(std::vector<GrpcConnection*> conns)
    : conns_(std::move(conns)), want_out_(conns_.size()) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  for (size_t i = 0; i < conns_.size(); ++i) {
    if (conns_[i]->fd() < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, conns_[i]->fd(), &ev);
  }
}

EventLoop::~EventLoop() { close(epfd_); }

void EventLoop::FlushAll() {
  for (size_t i = 0; i < conns_.size(); ++i) Watch(i, !conns_[i]->Flush());
}

void EventLoop::Poll(int timeout_ms) {
  epoll_event evs[64];
  int n = epoll_wait(epfd_, evs, 64, timeout_ms);
  for (int k = 0; k < n; ++k) {
    const size_t i = evs[k].data.u64;
    GrpcConnection* c = conns_[i];
    bool blocked;
    if ((evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
      blocked = !c->OnReadable();
    } else {
      blocked = !c->Flush();
    }
    Watch(i, blocked);
  }
}

void EventLoop::Watch(size_t i, bool out) {
  if (want_out_[i] == out || conns_[i]->fd() < 0) return;
  want_out_[i] = out;
  epoll_event ev{};
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
  ev.data.u64 = i;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, conns_[i]->fd(), &ev);
}

}  // namespace rusd::loadgen
