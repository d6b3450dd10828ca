#include "tools/table.h"

#include <algorithm>
#include <utility>

namespace nighfs::tools {
namespace {

// Display width, counting each UTF-8 code point once (continuation bytes are 10xxxxxx).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

}  // namespace

std::string Printable(std::string s) {
  for (char& c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return s;
}

Table::Table(std::vector<std::string> header) {
  for (auto& h : header) header_.push_back(Printable(std::move(h)));
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(header_.size());
  for (auto& c : cells) c = Printable(std::move(c));
  rows_.push_back(std::move(cells));
}

std::string Table::Render(int indent) const {
  std::vector<size_t> widths(header_.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);

  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line(static_cast<size_t>(std::max(indent, 0)), ' ');
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - Width(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  emit(header_);
  for (const auto& row : rows_) emit(row);
  return out;
}

}  // namespace nighfs::tools
