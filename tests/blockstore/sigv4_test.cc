// SigV4 against the worked examples AWS publishes in the S3 API reference ("Signature
// Calculations for the Authorization Header: Transferring Payload in a Single Chunk"), with the
// intermediate canonical request and string to sign checked where the documentation shows
// them; plus the hashes and MACs of common/crypto.h that the signature is made of. (The XML
// reader the S3 store parses responses with is tested in xml_test.cc.)
#include "blockstore/sigv4.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_status.h"

namespace nighfs::blockstore {
namespace {

using ::testing::HasSubstr;

constexpr char kAccessKey[] = "AKIAIOSFODNN7EXAMPLE";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kHost[] = "examplebucket.s3.amazonaws.com";

absl::Time ExampleTime() {
  return absl::FromCivil(absl::CivilSecond(2013, 5, 24, 0, 0, 0), absl::UTCTimeZone());
}

sigv4::Credentials ExampleCredentials() { return {kAccessKey, kSecret, ""}; }

TEST(SigV4Test, HashesAndHmac) {
  EXPECT_EQ(Sha256Hex(""), sigv4::kEmptyPayloadSha256);
  EXPECT_EQ(Sha256Hex("Welcome to Amazon S3."),
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  // RFC 1864 style: base64 of the raw digest. MD5("") = d41d8cd98f00b204e9800998ecf8427e.
  EXPECT_EQ(Md5Base64(""), "1B2M2Y8AsgTpgAmY7PhCfg==");
  // RFC 4231 test case 2.
  EXPECT_EQ(absl::BytesToHexString(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // sigv4:: still names the payload helpers for callers that build S3 requests.
  EXPECT_EQ(sigv4::Sha256Hex("Welcome to Amazon S3."), Sha256Hex("Welcome to Amazon S3."));
  EXPECT_EQ(sigv4::Md5Base64("x"), Md5Base64("x"));
}

// The rest of common/crypto.h, against published vectors.
TEST(CryptoTest, Sha256RawIsTheHexDigest) {
  EXPECT_EQ(Sha256("").size(), 32u);
  EXPECT_EQ(absl::BytesToHexString(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // FIPS 180-2
  EXPECT_EQ(Sha256Hex("abc"), absl::BytesToHexString(Sha256("abc")));
}

TEST(CryptoTest, HmacSha256Rfc4231AndEdgeKeys) {
  // RFC 4231 test case 1.
  EXPECT_EQ(absl::BytesToHexString(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // RFC 4231 test case 6: a key longer than the block size is hashed first.
  EXPECT_EQ(absl::BytesToHexString(HmacSha256(
                std::string(131, '\xaa'),
                "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // An empty key is a valid key (printf '' | openssl dgst -sha256 -hmac '').
  EXPECT_EQ(absl::BytesToHexString(HmacSha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  // Keys and data are bytes, NULs included.
  EXPECT_NE(HmacSha256(std::string("k\0a", 3), "d"), HmacSha256(std::string("k\0b", 3), "d"));
}

TEST(CryptoTest, Md5Base64) {
  // printf 'hello world' | openssl dgst -md5 -binary | base64
  EXPECT_EQ(Md5Base64("hello world"), "XrY7u+Ae7tCTyyK7j1rNww==");
}

TEST(CryptoTest, Base64Rfc4648Vectors) {
  const std::pair<const char*, const char*> kVectors[] = {
      {"", ""},           {"f", "Zg=="},          {"fo", "Zm8="},       {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : kVectors) {
    EXPECT_EQ(Base64Encode(plain), encoded) << plain;
    EXPECT_EQ(Base64Decode(encoded), std::optional<std::string>(plain)) << encoded;
  }
  EXPECT_EQ(Base64Encode(std::string("\xfb\xff", 2)), "+/8=");  // the standard alphabet
  const std::string bytes("\0\x01\xfe\xff", 4);
  EXPECT_EQ(Base64Decode(Base64Encode(bytes)), std::optional<std::string>(bytes));
}

TEST(CryptoTest, Base64DecodeToleratesMissingPaddingButNotMalformedInput) {
  EXPECT_EQ(Base64Decode("Zm8"), std::optional<std::string>("fo"));
  EXPECT_EQ(Base64Decode("Zg"), std::optional<std::string>("f"));
  // Quotes, the URL-safe alphabet, '=' inside the data and concatenated groups are refused
  // (OpenSSL's EVP_DecodeBlock accepts several of these).
  for (const char* bad : {"Z", "Zm9v!", "\"Zm9v\"", "-_8=", "QQ=A", "=QQ=", "QQ===", "Zg==Zg=="}) {
    EXPECT_EQ(Base64Decode(bad), std::nullopt) << bad;
  }
}

// "Examples of how to derive a signing key for Signature Version 4" (AWS general reference).
TEST(SigV4Test, SigningKeyMatchesPublishedDerivation) {
  EXPECT_EQ(absl::BytesToHexString(sigv4::SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                                     "20120215", "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4Test, AmzDate) {
  EXPECT_EQ(sigv4::AmzDate(ExampleTime()), "20130524T000000Z");
  EXPECT_EQ(sigv4::AmzDate(absl::FromCivil(absl::CivilSecond(2024, 12, 31, 23, 59, 7),
                                           absl::UTCTimeZone())),
            "20241231T235907Z");
}

TEST(SigV4Test, UriEncodeFollowsS3Rules) {
  EXPECT_EQ(sigv4::UriEncode("test$file.text", false), "test%24file.text");
  EXPECT_EQ(sigv4::UriEncode("AZaz09-._~", true), "AZaz09-._~");
  EXPECT_EQ(sigv4::UriEncode("a b/c", false), "a%20b/c");
  EXPECT_EQ(sigv4::UriEncode("a b/c", true), "a%20b%2Fc");
  EXPECT_EQ(sigv4::UriEncode("+=&*%", true), "%2B%3D%26%2A%25");
  EXPECT_EQ(sigv4::UriEncode("\xc3\xa9", true), "%C3%A9");  // UTF-8 bytes, uppercase hex
  // Encoded once: a '%' in a key is itself encoded, never left as an escape (S3 does not
  // double-encode, but it does not decode our path before comparing either).
  EXPECT_EQ(sigv4::CanonicalUri("/bucket/a%20b"), "/bucket/a%2520b");
  EXPECT_EQ(sigv4::CanonicalUri(""), "/");
}

TEST(SigV4Test, CanonicalQueryStringSortsAndEncodes) {
  EXPECT_EQ(sigv4::CanonicalQueryString({{"prefix", "J"}, {"max-keys", "2"}}),
            "max-keys=2&prefix=J");
  EXPECT_EQ(sigv4::CanonicalQueryString({{"lifecycle", ""}}), "lifecycle=");
  EXPECT_EQ(sigv4::CanonicalQueryString(
                {{"list-type", "2"}, {"continuation-token", "1/a+b=="}, {"prefix", "p/q"}}),
            "continuation-token=1%2Fa%2Bb%3D%3D&list-type=2&prefix=p%2Fq");
  EXPECT_EQ(sigv4::CanonicalQueryString({}), "");
}

// Example: GET Object, the first 10 bytes of test.txt.
TEST(SigV4Test, AwsExampleGetObject) {
  sigv4::Request r;
  r.method = "GET";
  r.raw_path = "/test.txt";
  r.headers = {{"Host", kHost},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", sigv4::kEmptyPayloadSha256},
               {"x-amz-date", "20130524T000000Z"}};
  r.payload_hash = sigv4::kEmptyPayloadSha256;
  const sigv4::Signed s = sigv4::Sign(r, ExampleCredentials(), "us-east-1", "s3", ExampleTime());
  EXPECT_EQ(s.canonical_request,
            "GET\n"
            "/test.txt\n"
            "\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "range:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n"
            "\n"
            "host;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

// Example: PUT Object, a key with '$' and a caller-supplied storage class header.
TEST(SigV4Test, AwsExamplePutObject) {
  const std::string body = "Welcome to Amazon S3.";
  sigv4::Request r;
  r.method = "PUT";
  r.raw_path = "/test$file.text";
  r.payload_hash = sigv4::Sha256Hex(body);
  r.headers = {{"Host", kHost},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-date", "20130524T000000Z"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
               {"x-amz-content-sha256", r.payload_hash}};
  const sigv4::Signed s = sigv4::Sign(r, ExampleCredentials(), "us-east-1", "s3", ExampleTime());
  EXPECT_EQ(s.canonical_request,
            "PUT\n"
            "/test%24file.text\n"
            "\n"
            "date:Fri, 24 May 2013 00:00:00 GMT\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
            "x-amz-date:20130524T000000Z\n"
            "x-amz-storage-class:REDUCED_REDUNDANCY\n"
            "\n"
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

// Example: GET Bucket Lifecycle, a sub-resource parameter without a value.
TEST(SigV4Test, AwsExampleGetBucketLifecycle) {
  sigv4::Request r;
  r.method = "GET";
  r.raw_path = "/";
  r.raw_query = {{"lifecycle", ""}};
  r.payload_hash = sigv4::kEmptyPayloadSha256;
  r.headers = {{"Host", kHost},
               {"x-amz-date", "20130524T000000Z"},
               {"x-amz-content-sha256", sigv4::kEmptyPayloadSha256}};
  const sigv4::Signed s = sigv4::Sign(r, ExampleCredentials(), "us-east-1", "s3", ExampleTime());
  EXPECT_EQ(s.canonical_request,
            "GET\n/\nlifecycle=\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
  EXPECT_EQ(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

// Example: Get Bucket (List Objects), parameters given out of order on purpose.
TEST(SigV4Test, AwsExampleListObjects) {
  sigv4::Request r;
  r.method = "GET";
  r.raw_path = "/";
  r.raw_query = {{"prefix", "J"}, {"max-keys", "2"}};
  r.payload_hash = sigv4::kEmptyPayloadSha256;
  r.headers = {{"Host", kHost},
               {"x-amz-date", "20130524T000000Z"},
               {"x-amz-content-sha256", sigv4::kEmptyPayloadSha256}};
  const sigv4::Signed s = sigv4::Sign(r, ExampleCredentials(), "us-east-1", "s3", ExampleTime());
  EXPECT_EQ(s.canonical_request,
            "GET\n/\nmax-keys=2&prefix=J\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\n"
            "host;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4Test, HeaderNamesAndSpacingAreCanonicalized) {
  sigv4::Request a;
  a.method = "GET";
  a.raw_path = "/k";
  a.payload_hash = sigv4::kUnsignedPayload;
  a.headers = {{"Host", kHost}, {"X-Amz-Date", "20130524T000000Z"}, {"X-Custom", "a   b"}};
  sigv4::Request b = a;
  b.headers = {{"x-custom", "  a b "}, {"x-amz-date", "20130524T000000Z"}, {"host", kHost}};
  const sigv4::Signed sa = sigv4::Sign(a, ExampleCredentials(), "us-east-1", "s3", ExampleTime());
  const sigv4::Signed sb = sigv4::Sign(b, ExampleCredentials(), "us-east-1", "s3", ExampleTime());
  EXPECT_EQ(sa.signature, sb.signature);
  EXPECT_THAT(sa.canonical_request, HasSubstr("\nx-custom:a b\n"));
  EXPECT_THAT(sa.canonical_request, HasSubstr("\nUNSIGNED-PAYLOAD"));

  // A repeated header is one canonical line with the values joined by ','.
  sigv4::Request c = a;
  c.headers.emplace_back("x-custom", "c");
  EXPECT_THAT(sigv4::Sign(c, ExampleCredentials(), "us-east-1", "s3", ExampleTime())
                  .canonical_request,
              HasSubstr("\nx-custom:a b,c\n"));
}

TEST(SigV4Test, SignatureCoversPathQueryRegionAndTime) {
  sigv4::Request r;
  r.method = "GET";
  r.raw_path = "/a";
  r.payload_hash = sigv4::kEmptyPayloadSha256;
  r.headers = {{"host", kHost}};
  const auto sig = [&](const sigv4::Request& req, std::string_view region, absl::Time t) {
    return sigv4::Sign(req, ExampleCredentials(), region, "s3", t).signature;
  };
  const std::string base = sig(r, "us-east-1", ExampleTime());
  sigv4::Request other_path = r;
  other_path.raw_path = "/b";
  sigv4::Request other_query = r;
  other_query.raw_query = {{"x", "1"}};
  EXPECT_NE(sig(other_path, "us-east-1", ExampleTime()), base);
  EXPECT_NE(sig(other_query, "us-east-1", ExampleTime()), base);
  EXPECT_NE(sig(r, "eu-west-1", ExampleTime()), base);
  EXPECT_NE(sig(r, "us-east-1", ExampleTime() + absl::Seconds(1)), base);
}

TEST(SigV4Test, SignS3RequestAddsAndSignsAmzHeaders) {
  sigv4::Credentials creds = ExampleCredentials();
  creds.session_token = "session-token-value";
  HttpHeaders headers = {{"Host", kHost}, {"Range", "bytes=0-9"}};
  sigv4::SignS3Request("GET", "/test.txt", {}, sigv4::kEmptyPayloadSha256, creds, "us-east-1",
                       ExampleTime(), &headers);
  std::string authorization, date, sha, token;
  for (const auto& [name, value] : headers) {
    if (name == "Authorization") authorization = value;
    if (name == "x-amz-date") date = value;
    if (name == "x-amz-content-sha256") sha = value;
    if (name == "x-amz-security-token") token = value;
  }
  EXPECT_EQ(date, "20130524T000000Z");
  EXPECT_EQ(sha, sigv4::kEmptyPayloadSha256);
  EXPECT_EQ(token, "session-token-value");
  EXPECT_THAT(authorization,
              HasSubstr("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date;"
                        "x-amz-security-token,"));
  // The secret itself never appears in what is sent.
  for (const auto& [name, value] : headers) EXPECT_THAT(value, ::testing::Not(HasSubstr(kSecret)));

  // Without a session token the result is exactly AWS's GET Object example.
  HttpHeaders plain = {{"Host", kHost}, {"Range", "bytes=0-9"}};
  sigv4::SignS3Request("GET", "/test.txt", {}, sigv4::kEmptyPayloadSha256, ExampleCredentials(),
                       "us-east-1", ExampleTime(), &plain);
  EXPECT_EQ(plain.back().first, "Authorization");
  EXPECT_THAT(plain.back().second,
              HasSubstr("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
}

}  // namespace
}  // namespace nighfs::blockstore
