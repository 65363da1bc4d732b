#include "io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "moekit/error.hpp"

namespace moekit::io {

namespace {
struct Fd {
  int fd;
  ~Fd() { ::close(fd); }
};
}  // namespace

Bytes map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(Errc::not_found, path + ": cannot open (" + std::strerror(errno) + ")");
  Fd guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(Errc::not_found, path + ": cannot stat (" + std::strerror(errno) + ")");
  if (!S_ISREG(st.st_mode)) throw Error(Errc::invalid_argument, path + ": not a regular file");
  Bytes b;
  b.size = std::size_t(st.st_size);
  if (b.size == 0) {
    // mmap refuses length 0; an empty file still has to reach the header checks.
    b.owner = std::make_shared<int>(0);
    b.data = reinterpret_cast<const std::uint8_t*>(b.owner.get());
    return b;
  }
  void* p = ::mmap(nullptr, b.size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) throw Error(Errc::invalid_argument, path + ": cannot map (" + std::strerror(errno) + ")");
  const std::size_t size = b.size;
  b.owner = std::shared_ptr<const void>(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
  b.data = static_cast<const std::uint8_t*>(p);
  return b;
}

}  // namespace moekit::io
