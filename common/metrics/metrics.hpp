// Metrics: what `--metrics ADDR:PORT` serves to Prometheus (text format, prometheus-cpp's exposer).
// Each part of tandem keeps its own figures and, at every scrape, puts them into Families under the
// names of metrics/names.hpp: nothing is copied between scrapes, and a part that is gone (a
// finished migration) simply stops showing up.
//
//   Server server("127.0.0.1:9100");
//   server.addSource([&](Families& out) { replicator.collectMetrics(out); });
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prometheus {
class Exposer;
struct MetricFamily;
}  // namespace prometheus

namespace tandem::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Observations counted into fixed buckets (upper bounds, increasing), as a Prometheus histogram.
// Not thread-safe: its owner guards it with the mutex that guards its other figures.
class Histogram {
public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  // per bucket, not cumulative; +Inf last
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Buckets for durations in seconds from 50 us to 10 s, and for sizes from 1 to 64 Mi (powers of 4).
std::vector<double> secondsBuckets();
std::vector<double> sizeBuckets();

// The families of one scrape. A name given twice (with other labels) is one family.
class Families {
public:
  Families();
  ~Families();
  void gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void counter(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void histogram(std::string_view name, std::string_view help, const Histogram& histogram, const Labels& labels = {});
  std::vector<prometheus::MetricFamily> take();

private:
  prometheus::MetricFamily& family(std::string_view name, std::string_view help, int type);
  std::vector<prometheus::MetricFamily> families_;
};

class Server {
public:
  // Serves http://ADDR:PORT/metrics; throws Error(BadInput) with one sentence when it cannot.
  explicit Server(const std::string& address);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // fill runs on the exposer's thread at every scrape, until removeSources() (call it before
  // anything a source refers to goes away).
  void addSource(std::function<void(Families&)> fill);
  void removeSources();
  const std::string& address() const { return address_; }

private:
  class Collector;
  std::string address_;
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace tandem::metrics
