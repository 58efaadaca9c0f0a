#include "refsmtp/delivery/dns.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>

namespace refsmtp::delivery {

namespace {

// c-ares: ares_library_init once per process (thread-safety of the init itself is ours to ensure).
void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

DnsStatus status_of(int code) {
  switch (code) {
    case ARES_SUCCESS:
      return DnsStatus::ok;
    case ARES_ENODATA:
      return DnsStatus::no_data;
    case ARES_ENOTFOUND:
      return DnsStatus::nxdomain;  // NXDOMAIN
    default:
      return DnsStatus::temporary;  // SERVFAIL, REFUSED, timeout, connection refused, ...
  }
}

struct Channel {
  ares_channel ch = nullptr;
  int init_status = ARES_SUCCESS;
  std::string error;

  explicit Channel(const DnsOptions& opt) {
    init_library();
    ares_options o{};
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;  // names are absolute; no search list
    o.timeout = static_cast<int>(opt.timeout.count());
    o.tries = opt.tries;
    init_status = ares_init_options(&ch, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (init_status != ARES_SUCCESS) {
      error = std::string("c-ares init: ") + ares_strerror(init_status);
      ch = nullptr;
      return;
    }
    if (!opt.servers.empty()) {
      std::string csv;
      for (const auto& s : opt.servers) csv += (csv.empty() ? "" : ",") + s;
      const int rc = ares_set_servers_ports_csv(ch, csv.c_str());
      if (rc != ARES_SUCCESS) error = "DNS servers '" + csv + "': " + ares_strerror(rc);
    }
  }
  ~Channel() {
    if (ch) ares_destroy(ch);
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Runs c-ares until `finished()` (every query has called back). c-ares enforces the timeouts
  // and tries itself; `limit` is a backstop after which what is left is cancelled, so callbacks
  // never outlive the answers they write to.
  template <class Finished>
  void run(Finished finished, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!finished()) {
      if (std::chrono::steady_clock::now() >= until) {
        ares_cancel(ch);  // calls back with ARES_ECANCELLED
        return;
      }
      ares_socket_t socks[ARES_GETSOCK_MAXNUM];
      const int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
      pollfd fds[ARES_GETSOCK_MAXNUM];
      nfds_t n = 0;
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short events = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
        if (events) fds[n++] = pollfd{socks[i], events, 0};
      }
      timeval tv{};
      timeval* t = ares_timeout(ch, nullptr, &tv);
      const int ms = t ? static_cast<int>(t->tv_sec * 1000 + t->tv_usec / 1000) : 100;
      const int ready = ::poll(fds, n, std::min(ms, 100));
      if (ready <= 0) {
        ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
        continue;
      }
      for (nfds_t i = 0; i < n; ++i) {
        const ares_socket_t r = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
        const ares_socket_t w = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
        if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD) ares_process_fd(ch, r, w);
      }
    }
  }
};

struct Answer {
  int status = ARES_ETIMEOUT;
  std::string data;
  bool done = false;
};

void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  auto* a = static_cast<Answer*>(arg);
  a->status = status;
  a->done = true;
  if (status == ARES_SUCCESS && abuf && alen > 0) a->data.assign(reinterpret_cast<const char*>(abuf), static_cast<std::size_t>(alen));
}

std::string describe(int status) { return ares_strerror(status); }

}  // namespace

CaresResolver::CaresResolver(DnsOptions options) : opt_(std::move(options)) {}

std::string CaresResolver::check() const {
  Channel c(opt_);
  return c.error;
}

// The longest a lookup may take: every try of every server, plus a margin.
static std::chrono::milliseconds lookup_limit(const DnsOptions& o) {
  const auto servers = static_cast<long>(std::max<std::size_t>(1, o.servers.size()));
  return o.timeout * std::max(1, o.tries) * servers * 2 + std::chrono::seconds(1);
}

MxLookup CaresResolver::mx(const std::string& domain) {
  MxLookup out;
  Answer a;  // declared before the channel: it outlives every callback
  Channel c(opt_);
  if (!c.error.empty()) {
    out.error = c.error;
    return out;
  }
  ares_query(c.ch, domain.c_str(), 1 /* C_IN */, 15 /* T_MX */, on_answer, &a);
  c.run([&] { return a.done; }, lookup_limit(opt_));
  out.status = a.done ? status_of(a.status) : DnsStatus::temporary;
  if (out.status != DnsStatus::ok) {
    out.error = describe(a.status);
    return out;
  }
  ares_mx_reply* mx = nullptr;
  const int rc = ares_parse_mx_reply(reinterpret_cast<const unsigned char*>(a.data.data()), static_cast<int>(a.data.size()), &mx);
  if (rc != ARES_SUCCESS) {
    // An answer without MX records (e.g. only a CNAME) counts as none; a garbled one is temporary.
    out.status = rc == ARES_ENODATA ? DnsStatus::no_data : DnsStatus::temporary;
    out.error = describe(rc);
    return out;
  }
  for (ares_mx_reply* r = mx; r; r = r->next) out.records.push_back(MxRecord{r->priority, r->host ? r->host : ""});
  ares_free_data(mx);
  if (out.records.empty()) out.status = DnsStatus::no_data;
  return out;
}

AddressLookup CaresResolver::addresses(const std::string& host) {
  AddressLookup out;
  Answer a4, a6;  // declared before the channel: they outlive every callback
  Channel c(opt_);
  if (!c.error.empty()) {
    out.error = c.error;
    return out;
  }
  ares_query(c.ch, host.c_str(), 1 /* C_IN */, 1 /* T_A */, on_answer, &a4);
  ares_query(c.ch, host.c_str(), 1 /* C_IN */, 28 /* T_AAAA */, on_answer, &a6);
  c.run([&] { return a4.done && a6.done; }, lookup_limit(opt_));
  // The addresses of one answer (A or AAAA: `parse` and `family` say which), in order.
  const auto collect = [&out](const Answer& a, auto parse, int family) {
    if (!a.done || a.status != ARES_SUCCESS) return;
    hostent* he = nullptr;
    if (parse(reinterpret_cast<const unsigned char*>(a.data.data()), static_cast<int>(a.data.size()), &he, nullptr,
              nullptr) != ARES_SUCCESS ||
        !he) {
      return;
    }
    char text[INET6_ADDRSTRLEN];
    for (char** p = he->h_addr_list; p && *p; ++p) {
      if (::inet_ntop(family, *p, text, sizeof text)) out.addresses.emplace_back(text);
    }
    ares_free_hostent(he);
  };
  collect(a4, ares_parse_a_reply, AF_INET);
  collect(a6, ares_parse_aaaa_reply, AF_INET6);
  if (!out.addresses.empty()) {
    out.status = DnsStatus::ok;
    return out;
  }
  const DnsStatus s4 = a4.done ? status_of(a4.status) : DnsStatus::temporary;
  const DnsStatus s6 = a6.done ? status_of(a6.status) : DnsStatus::temporary;
  if (s4 == DnsStatus::temporary || s6 == DnsStatus::temporary) {
    out.status = DnsStatus::temporary;
    out.error = describe(s4 == DnsStatus::temporary ? a4.status : a6.status);
  } else if (s4 == DnsStatus::nxdomain && s6 == DnsStatus::nxdomain) {
    out.status = DnsStatus::nxdomain;
    out.error = describe(a4.status);
  } else {
    out.status = DnsStatus::no_data;
    out.error = "no A or AAAA record";
  }
  return out;
}

}  // namespace refsmtp::delivery
