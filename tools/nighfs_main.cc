// nighfs: administer nighfs volumes and inspect the mounts of this host. See nighfs(1).
#include <iostream>

#include "tools/cli.h"

int main(int argc, char** argv) {
  return nighfs::tools::RunNighfsCli(argc, argv, std::cout, std::cerr);
}
