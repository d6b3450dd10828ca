// Plain-text tables for terminal output: a header row and left-aligned columns separated by two
// spaces, like `ps` and `kubectl get`, so they stay readable and easy to cut with awk.
#ifndef NIGHFS_TOOLS_TABLE_H_
#define NIGHFS_TOOLS_TABLE_H_

#include <string>
#include <vector>

namespace nighfs::tools {

// `s` with control characters (newlines, tabs, escape sequences) replaced by '?', for printing
// strings that come from a server or a status file: one value stays one line and nothing can
// drive the terminal.
std::string Printable(std::string s);

class Table {
 public:
  explicit Table(std::vector<std::string> header);

  // A row with fewer cells than the header is padded with empty cells; extra cells are an
  // error in the caller and are dropped. Cells go through Printable().
  void AddRow(std::vector<std::string> cells);

  size_t rows() const { return rows_.size(); }

  // Every line, header included, is indented by `indent` spaces and ends with '\n'. No line has
  // trailing spaces. Widths count UTF-8 code points, not bytes.
  std::string Render(int indent = 0) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace nighfs::tools

#endif  // NIGHFS_TOOLS_TABLE_H_
