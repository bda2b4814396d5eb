// The shipped alerts, evaluated by the real Prometheus (Debian's prometheus) scraping a protected
// pair through a failover: TandemFailover fires once the standby took over, and the guest it runs
// without a standby of its own makes TandemGuestUnprotected pending. On main before issue 14 the
// failover counter appeared only after the failover, at 1, and increase() never saw it.
#include <signal.h>

#include <boost/test/unit_test.hpp>

#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/http_get.hpp"
#include "support/protected_pair.hpp"

using namespace tandem::test;

namespace {

// Ports of this suite: 10000 to 11999 (replication PORT to PORT + 2, then two metrics ports and
// Prometheus's).
struct AlertingPorts {
  int base = 10000 + 8 * ((::getpid() * 7) % 240);
  std::string replication() const { return "tcp://127.0.0.1:" + std::to_string(base); }
  int primaryMetrics() const { return base + 3; }
  int standbyMetrics() const { return base + 4; }
  int prometheus() const { return base + 5; }
};

// Prometheus's answer to path as JSON, or null.
nlohmann::json ask(int port, const std::string& path) {
  std::string body = httpGet(static_cast<uint16_t>(port), path);
  try {
    return nlohmann::json::parse(body);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// The state of alert `name` ("pending", "firing") in Prometheus's /api/v1/alerts, or "".
std::string alertState(int port, const std::string& name) {
  auto reply = ask(port, "/api/v1/alerts");
  if (!reply.is_object() || !reply.contains("data")) return "";
  for (const auto& alert : reply["data"]["alerts"])
    if (alert["labels"].value("alertname", "") == name) return alert.value("state", "");
  return "";
}

// The value of an instant query with one result, or nullopt.
std::optional<double> query(int port, const std::string& expression) {
  auto reply = ask(port, "/api/v1/query?query=" + expression);
  if (!reply.is_object() || reply.value("status", "") != "success") return std::nullopt;
  const auto& result = reply["data"]["result"];
  if (result.size() != 1) return std::nullopt;
  return std::stod(result[0]["value"][1].get<std::string>());
}

template <typename Check>
bool within(std::chrono::seconds timeout, Check check) {
  for (auto until = Clock::now() + timeout; Clock::now() < until; std::this_thread::sleep_for(250ms))
    if (check()) return true;
  return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(alerting)

BOOST_AUTO_TEST_CASE(prometheus_fires_the_failover_alert_when_a_standby_takes_over) {
  TempDir tmp("alerting");
  AlertingPorts ports;
  std::string socket = tmp / "p.sock";
  auto standby = startTandem({"standby", "--listen", ports.replication(), "--metrics",
                              "127.0.0.1:" + std::to_string(ports.standbyMetrics())});
  auto primary = startTandemRun({"--append", "job=counter rate=50", "--memory", "64M", "--control", socket, "--protect",
                                 ports.replication(), "--metrics", "127.0.0.1:" + std::to_string(ports.primaryMetrics())});
  BOOST_REQUIRE(waitProtected(socket, 30s));

  // The operator's configuration (ops/prometheus), scraping this pair every second.
  std::ofstream(tmp / "prometheus.yml") << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                        << "rule_files:\n  - " << TANDEM_SOURCE_DIR << "/ops/prometheus/alerts.yml\n"
                                        << "scrape_configs:\n  - job_name: tandem\n    static_configs:\n"
                                        << "      - targets: ['127.0.0.1:" << ports.primaryMetrics() << "', '127.0.0.1:"
                                        << ports.standbyMetrics() << "']\n        labels:\n          vm: vm1\n";
  ChildProcess prometheus({"/usr/bin/prometheus", "--config.file=" + (tmp / "prometheus.yml"),
                           "--storage.tsdb.path=" + (tmp / "data"),
                           "--web.listen-address=127.0.0.1:" + std::to_string(ports.prometheus())});
  // Both scraped, the standby's failover counter at 0 among them.
  bool scraped = within(60s, [&] {
    return query(ports.prometheus(), "tandem_failovers_total") == 0.0 &&
           query(ports.prometheus(), "tandem_protected%7Binstance%3D%22127.0.0.1%3A" + std::to_string(ports.primaryMetrics()) +
                                         "%22%7D") == 1.0;
  });
  if (!scraped) BOOST_FAIL("Prometheus did not scrape the pair; it logged:\n" << logOf(prometheus));
  std::this_thread::sleep_for(2s);  // a few samples of the counter at 0
  BOOST_TEST(alertState(ports.prometheus(), "TandemFailover") == "");

  primary->kill(SIGKILL);
  primary->wait(5s);
  bool fired = within(30s, [&] { return alertState(ports.prometheus(), "TandemFailover") == "firing"; });
  if (!fired)
    BOOST_FAIL("TandemFailover did not fire; Prometheus has " << ask(ports.prometheus(), "/api/v1/alerts").dump()
                                                             << "; the standby logged:\n" << logOf(*standby));
  BOOST_TEST(query(ports.prometheus(), "tandem_failovers_total").value_or(-1) == 1.0);
  // The guest runs on the old standby with no standby of its own: unprotected, pending for a minute.
  bool pending = within(20s, [&] {
    auto state = alertState(ports.prometheus(), "TandemGuestUnprotected");
    return state == "pending" || state == "firing";
  });
  BOOST_TEST(pending, "TandemGuestUnprotected: " << ask(ports.prometheus(), "/api/v1/alerts").dump());
}

BOOST_AUTO_TEST_SUITE_END()
