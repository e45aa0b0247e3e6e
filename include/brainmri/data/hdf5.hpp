#pragma once
// A thin RAII layer over the HDF5 C API: owned handles, errors as exceptions that carry HDF5's
// own error stack, and typed helpers for the few shapes of data the project stores.

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace brainmri::hdf5 {

class Hdf5Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Owns one hid_t and closes it with the matching H5*close function.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept;
  ~Handle() { reset(); }

  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: handles are passed straight to the C API
  bool valid() const { return id_ >= 0; }
  // Closes now and reports a failure to close (for files: the final flush), unlike the destructor.
  void close();
  void reset() noexcept;

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Throws Hdf5Error("<what>: <HDF5 error stack>") when status < 0; returns status otherwise.
hid_t check(hid_t status, const std::string& what);

Handle create_file(const std::filesystem::path& path);
Handle open_file_readonly(const std::filesystem::path& path);
Handle open_dataset(hid_t file, const std::string& name);
Handle open_group(hid_t file, const std::string& name);
bool has_dataset(hid_t file, const std::string& name);
std::vector<hsize_t> dataset_shape(hid_t dataset);

void write_attribute(hid_t object, const std::string& name, const std::string& value);
void write_attribute(hid_t object, const std::string& name, std::int64_t value);
void write_attribute(hid_t object, const std::string& name, double value);
void write_attribute(hid_t object, const std::string& name, const std::vector<std::string>& values);

bool has_attribute(hid_t object, const std::string& name);
std::string read_string_attribute(hid_t object, const std::string& name);
std::int64_t read_int_attribute(hid_t object, const std::string& name);
double read_double_attribute(hid_t object, const std::string& name);
// Variable-length (h5py's str) or fixed-length (numpy bytes) strings, scalar or 1-D.
std::vector<std::string> read_string_list_attribute(hid_t object, const std::string& name);

// 1-D datasets of numbers (int32, int64, uint8, uint64) and of variable-length UTF-8 strings.
template <typename T>
void write_vector(hid_t file, const std::string& name, const std::vector<T>& values);
template <typename T>
std::vector<T> read_vector(hid_t file, const std::string& name);
void write_strings(hid_t file, const std::string& name, const std::vector<std::string>& values);
std::vector<std::string> read_strings(hid_t file, const std::string& name);
// Any floating-point dataset of any rank, converted to float32.
struct FloatArray {
  std::vector<hsize_t> shape;
  std::vector<float> values;  // row-major
};
FloatArray read_float_array(hid_t location, const std::string& path);
void write_float_array(hid_t location, const std::string& path, const std::vector<hsize_t>& shape,
                       const std::vector<float>& values);
// The same in double precision (probabilities, where float32 would merge near-ties).
struct DoubleArray {
  std::vector<hsize_t> shape;
  std::vector<double> values;
};
DoubleArray read_double_array(hid_t location, const std::string& path);
void write_double_array(hid_t location, const std::string& path, const std::vector<hsize_t>& shape,
                        const std::vector<double>& values);

// Fixed-length ASCII strings, all of `width` characters (for hex digests).
void write_fixed_strings(hid_t file, const std::string& name, const std::vector<std::string>& values,
                         std::size_t width);
std::vector<std::string> read_fixed_strings(hid_t file, const std::string& name);

}  // namespace brainmri::hdf5
