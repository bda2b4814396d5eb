#include "metrics/metrics.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <algorithm>

#include "base/error.hpp"

namespace tandem::metrics {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  ++counts_[bucket];
  ++count_;
  sum_ += value;
}

std::vector<double> secondsBuckets() {
  return {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 10};
}

std::vector<double> sizeBuckets() {
  std::vector<double> bounds;
  for (double b = 1; b <= 64.0 * 1024 * 1024; b *= 4) bounds.push_back(b);
  return bounds;
}

Families::Families() = default;
Families::~Families() = default;

prometheus::MetricFamily& Families::family(std::string_view name, std::string_view help, int type) {
  for (auto& f : families_)
    if (f.name == name) return f;
  families_.push_back(prometheus::MetricFamily{std::string(name), std::string(help), static_cast<prometheus::MetricType>(type), {}});
  return families_.back();
}

namespace {

prometheus::ClientMetric withLabels(const Labels& labels) {
  prometheus::ClientMetric m;
  for (const auto& [name, value] : labels) m.label.push_back({name, value});
  return m;
}

}  // namespace

void Families::gauge(std::string_view name, std::string_view help, double value, const Labels& labels) {
  auto m = withLabels(labels);
  m.gauge.value = value;
  family(name, help, static_cast<int>(prometheus::MetricType::Gauge)).metric.push_back(std::move(m));
}

void Families::counter(std::string_view name, std::string_view help, double value, const Labels& labels) {
  auto m = withLabels(labels);
  m.counter.value = value;
  family(name, help, static_cast<int>(prometheus::MetricType::Counter)).metric.push_back(std::move(m));
}

void Families::histogram(std::string_view name, std::string_view help, const Histogram& h, const Labels& labels) {
  auto m = withLabels(labels);
  m.histogram.sample_count = h.count();
  m.histogram.sample_sum = h.sum();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += h.counts()[i];
    m.histogram.bucket.push_back({cumulative, h.bounds()[i]});
  }
  m.histogram.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
  family(name, help, static_cast<int>(prometheus::MetricType::Histogram)).metric.push_back(std::move(m));
}

std::vector<prometheus::MetricFamily> Families::take() { return std::move(families_); }

class Server::Collector final : public prometheus::Collectable {
public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lock(mutex_);
    Families out;
    for (const auto& fill : sources_) fill(out);
    return out.take();
  }
  void add(std::function<void(Families&)> fill) {
    std::lock_guard lock(mutex_);
    sources_.push_back(std::move(fill));
  }
  void clear() {
    std::lock_guard lock(mutex_);
    sources_.clear();
  }

private:
  mutable std::mutex mutex_;
  std::vector<std::function<void(Families&)>> sources_;
};

Server::Server(const std::string& address) : address_(address), collector_(std::make_shared<Collector>()) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    failBadInput("--metrics ", address, ": give ADDR:PORT, e.g. --metrics 127.0.0.1:9100");
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    failBadInput("cannot serve metrics on ", address, " (", e.what(), "); choose a free ADDR:PORT");
  }
  exposer_->RegisterCollectable(collector_);
}

Server::~Server() {
  removeSources();
  exposer_.reset();
}

void Server::addSource(std::function<void(Families&)> fill) { collector_->add(std::move(fill)); }
void Server::removeSources() { collector_->clear(); }

}  // namespace tandem::metrics
