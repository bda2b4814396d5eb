// What operators install next to tandem: the systemd units pass systemd-analyze verify, the
// Prometheus configuration and alert rules pass promtool, and the Grafana dashboard is JSON whose
// queries name only metrics tandem exports (the catalog common/metrics/names.hpp, which the
// metrics suite checks against a live pair).
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/snapshot_helpers.hpp"

using namespace tandem::test;

namespace {

const std::filesystem::path kSource = TANDEM_SOURCE_DIR;

std::string readText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs argv; its exit code and everything it wrote (stdout and stderr).
std::pair<int, std::string> run(const std::vector<std::string>& argv) {
  ChildProcess child(argv);
  int status = child.wait(60s);
  std::string out;
  while (auto line = child.readLine(100ms)) out += *line + "\n";
  return {status, out + child.stderrText()};
}

std::set<std::string> exportedNames() {
  std::set<std::string> names;
  std::string text = readText(kSource / "common/metrics/names.hpp");
  std::regex quoted("\"(tandem_[a-z0-9_]+)\"");
  for (std::sregex_iterator it(text.begin(), text.end(), quoted), end; it != end; ++it) names.insert((*it)[1]);
  return names;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_files)

BOOST_AUTO_TEST_CASE(the_systemd_units_verify) {
  // An instance of each template, with ExecStart pointing at this build's tandem (the units name
  // /usr/local/bin/tandem, where an installation puts it).
  TempDir tmp("units");
  for (const char* role : {"primary", "standby"}) {
    std::string unit = readText(kSource / "ops/systemd" / (std::string("tandem-") + role + "@.service"));
    BOOST_REQUIRE(!unit.empty());
    unit = std::regex_replace(unit, std::regex("/usr/local/bin/tandem"), kTandemBinary);
    std::ofstream(tmp / (std::string("tandem-") + role + "@vm1.service")) << unit;
  }
  auto [status, out] = run({"/usr/bin/systemd-analyze", "verify", tmp / "tandem-primary@vm1.service", tmp / "tandem-standby@vm1.service"});
  BOOST_TEST(status == 0, out);
  BOOST_TEST(out.find("tandem-") == std::string::npos, "systemd-analyze complained: " << out);
}

BOOST_AUTO_TEST_CASE(the_prometheus_configuration_and_alert_rules_check) {
  auto [configStatus, config] = run({"/usr/bin/promtool", "check", "config", kSource / "ops/prometheus/prometheus.yml"});
  BOOST_TEST(configStatus == 0, config);
  auto [rulesStatus, rules] = run({"/usr/bin/promtool", "check", "rules", kSource / "ops/prometheus/alerts.yml"});
  BOOST_TEST(rulesStatus == 0, rules);
  // The rules use tandem's metrics only.
  auto names = exportedNames();
  std::string text = readText(kSource / "ops/prometheus/alerts.yml");
  std::regex metric("tandem_[a-z0-9_]+");
  for (std::sregex_iterator it(text.begin(), text.end(), metric), end; it != end; ++it) {
    std::string name = std::regex_replace(it->str(), std::regex("_(bucket|sum|count)$"), "");
    BOOST_TEST(names.count(name) == 1u, "alerts.yml uses " << it->str() << ", which tandem does not export");
  }
}

// The alerts fire on series shaped as tandem exports them (ops/prometheus/alerts_test.yml): a primary
// unprotected for a minute, a failover (a counter that is there at 0 before it), a guest paused for
// its held output. With the failover counter missing until the first failover, it fails.
BOOST_AUTO_TEST_CASE(the_alert_rules_fire_on_the_series_tandem_exports) {
  auto [status, out] = run({"/usr/bin/promtool", "test", "rules", kSource / "ops/prometheus/alerts_test.yml"});
  BOOST_TEST(status == 0, out);
}

BOOST_AUTO_TEST_CASE(the_dashboard_loads_and_names_only_exported_metrics) {
  auto dashboard = nlohmann::json::parse(readText(kSource / "ops/grafana/tandem-dashboard.json"));
  BOOST_REQUIRE(dashboard["panels"].is_array());
  BOOST_TEST(dashboard["panels"].size() >= 10u);
  auto names = exportedNames();
  std::regex metric("tandem_[a-z0-9_]+");
  size_t queries = 0;
  for (const auto& panel : dashboard["panels"])
    for (const auto& target : panel["targets"]) {
      std::string expr = target["expr"];
      ++queries;
      for (std::sregex_iterator it(expr.begin(), expr.end(), metric), end; it != end; ++it) {
        std::string name = std::regex_replace(it->str(), std::regex("_(bucket|sum|count)$"), "");
        BOOST_TEST(names.count(name) == 1u, "panel '" << panel["title"].get<std::string>() << "' uses " << it->str()
                                                      << ", which tandem does not export");
      }
    }
  BOOST_TEST(queries >= 14u);
}

BOOST_AUTO_TEST_SUITE_END()
