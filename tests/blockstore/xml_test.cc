// The XML reader both HTTP stores parse responses with (blockstore/xml.h): the documents S3 and
// Azure send, and the malformed or hostile ones it must refuse. The first cases were the S3 and
// Azure readers' own tests before the two readers became one; both sets must keep passing.
#include "blockstore/xml.h"

#include <string>

#include "blockstore/s3_responses.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_status.h"

namespace nighfs::blockstore {
namespace {

void ExpectMalformed(const std::string& doc) {
  EXPECT_THAT(ParseXml(doc), StatusIs(absl::StatusCode::kInvalidArgument)) << doc;
}

std::string Nested(int depth, std::string_view innermost = "") {
  std::string doc;
  for (int i = 0; i < depth; ++i) doc += "<a>";
  doc += innermost;
  for (int i = 0; i < depth; ++i) doc += "</a>";
  return doc;
}

// --- From the S3 reader's tests.

TEST(S3XmlTest, ParsesListBucketResult) {
  constexpr char kDoc[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>p/a&amp;b</Key><Size>10</Size><ETag>&quot;abc&quot;</ETag></Contents>
  <Contents><Key>p/c</Key><Size>0</Size><StorageClass/></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>)";
  absl::StatusOr<XmlElement> root = ParseXml(kDoc);
  ASSERT_OK(root);
  EXPECT_EQ(root->name, "ListBucketResult");
  EXPECT_EQ(root->ChildText("IsTruncated"), "true");
  EXPECT_EQ(root->ChildText("NextContinuationToken"),
            "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  const auto contents = root->Children("Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(contents[0]->ChildText("Key"), "p/a&b");
  EXPECT_EQ(contents[0]->ChildText("ETag"), "\"abc\"");
  EXPECT_EQ(contents[1]->ChildText("Size"), "0");
  EXPECT_NE(contents[1]->Child("StorageClass"), nullptr);
  EXPECT_EQ(root->Child("Missing"), nullptr);
  EXPECT_EQ(root->ChildText("Missing"), "");
}

TEST(S3XmlTest, ListPagesStripThePrefixAndRefuseOddEntries) {
  constexpr char kPage[] =
      "<ListBucketResult><Contents><Key>p/blk/1</Key><Size>7</Size></Contents>"
      "<Contents><Key>p/blk/<!-- c -->2</Key><Size>8</Size></Contents>"
      "<IsTruncated>true</IsTruncated><NextContinuationToken>t1</NextContinuationToken>"
      "</ListBucketResult>";
  absl::StatusOr<ListPage> page = ParseListBucketResult(kPage, "p/");
  ASSERT_OK(page);
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "blk/1");
  EXPECT_EQ(page->objects[0].size, 7u);
  EXPECT_EQ(page->objects[1].key, "blk/2");
  EXPECT_EQ(page->next_token, "t1");
  // A key outside the prefix, no key, a key holding an element, no size, a truncated page
  // without a token: each is a bad reply, never a listing with a made-up key.
  for (const char* bad : {
           "<ListBucketResult><Contents><Key>q/x</Key><Size>1</Size></Contents></ListBucketResult>",
           "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
           "<ListBucketResult><Contents><Key>p/b<IsTruncated>false</IsTruncated>1</Key>"
           "<Size>1</Size></Contents></ListBucketResult>",
           "<ListBucketResult><Contents><Key>p/x</Key></Contents></ListBucketResult>",
           "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
           "<Error/>"}) {
    EXPECT_FALSE(ParseListBucketResult(bad, "p/").ok()) << bad;
  }
}

TEST(S3XmlTest, ParsesErrorAndOddities) {
  absl::StatusOr<XmlElement> e = ParseXml(
      "<Error><Code>AccessDenied</Code><Message>Access &lt;Denied&gt; &#65;&#x42;&#xe9;</Message>"
      "<!-- a comment --><RequestId><![CDATA[id<1>]]></RequestId></Error>\n");
  ASSERT_OK(e);
  EXPECT_EQ(e->ChildText("Code"), "AccessDenied");
  EXPECT_EQ(e->ChildText("Message"), "Access <Denied> AB\xc3\xa9");
  EXPECT_EQ(e->ChildText("RequestId"), "id<1>");

  // Namespace prefixes and attributes (with '>' inside quotes) do not change names.
  absl::StatusOr<XmlElement> ns =
      ParseXml("<s3:Root a='x>y' b = \"2\"><s3:Key>k</s3:Key></s3:Root>");
  ASSERT_OK(ns);
  EXPECT_EQ(ns->name, "Root");
  EXPECT_EQ(ns->ChildText("Key"), "k");
}

TEST(S3XmlTest, RejectsMalformedDocuments) {
  for (const char* doc : {"", "plain text", "<a>", "<a></b>", "<a><b></a></b>", "<a>&bogus;</a>",
                          "<a>&#xZZ;</a>", "<a x=1></a>", "<a></a><b></b>", "<a><![CDATA[x</a>",
                          "<a>&#x110000;</a>"}) {
    EXPECT_THAT(ParseXml(doc), StatusIs(absl::StatusCode::kInvalidArgument)) << doc;
  }
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "<a>";
  for (int i = 0; i < 100; ++i) deep += "</a>";
  EXPECT_THAT(ParseXml(deep), StatusIs(absl::StatusCode::kInvalidArgument));
}

// --- From the Azure reader's tests.

TEST(AzureXmlTest, RejectsMalformedAndHostileDocuments) {
  for (const char* bad : {"", "text", "<a>", "<a></b>", "<a><b></a></b>", "<a x=1/>",
                          "<a>&bogus;</a>", "<a>&#0;</a>", "<a/><b/>", "<a><![CDATA[x</a>",
                          "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>", "<a><!DOCTYPE x></a>"}) {
    EXPECT_THAT(ParseXml(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += "<a>";
  EXPECT_THAT(ParseXml(deep), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AzureXmlTest, CdataAttributesAndCharacterReferences) {
  auto root = ParseXml("<r a='1' b=\"&lt;2&gt;\"><x><![CDATA[<raw>&amp;]]></x>"
                       "<y>&#233;&#x20AC;</y></r>");
  ASSERT_OK(root);
  EXPECT_EQ(root->attributes.at("a"), "1");
  EXPECT_EQ(root->attributes.at("b"), "<2>");
  EXPECT_EQ(root->ChildText("x"), "<raw>&amp;");
  EXPECT_EQ(root->ChildText("y"), "\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(root->Child("missing"), nullptr);
}

// --- The merged reader: each safety property of either former reader, now for both stores.

TEST(XmlReaderTest, SkipsALeadingByteOrderMarkOnly) {
  absl::StatusOr<XmlElement> root = ParseXml("\xEF\xBB\xBF<?xml version=\"1.0\"?><Error/>");
  ASSERT_OK(root);
  EXPECT_EQ(root->name, "Error");
  ExpectMalformed("<a/>\xEF\xBB\xBF");
  ExpectMalformed("\xEF\xBB\xBF\xEF\xBB\xBF<a/>");
}

TEST(XmlReaderTest, RefusesEveryMarkupDeclaration) {
  // A DOCTYPE is refused even without an internal subset: the old S3 reader skipped it.
  ExpectMalformed("<!DOCTYPE ListBucketResult><ListBucketResult/>");
  ExpectMalformed("<?xml version=\"1.0\"?>\n<!DOCTYPE a SYSTEM \"file:///etc/passwd\"><a/>");
  ExpectMalformed("<a><!ENTITY e \"x\"></a>");
  ExpectMalformed("<a/><!ELEMENT a ANY>");
  // Comments, processing instructions and CDATA are not declarations.
  absl::StatusOr<XmlElement> ok =
      ParseXml("<!-- c --><?pi x?><a><!-- c --><?pi?><![CDATA[<!DOCTYPE>]]></a><!-- c -->");
  ASSERT_OK(ok);
  EXPECT_EQ(ok->text, "<!DOCTYPE>");
}

TEST(XmlReaderTest, TextSplitByCommentsAndProcessingInstructionsReadsJoined) {
  // XML 1.0 section 2.4: character data runs around comments and PIs; they are not text.
  absl::StatusOr<XmlElement> doc = ParseXml("<a>blk/0<?xml version=\"1.0\"?>1<!-- c -->2</a>");
  ASSERT_OK(doc);
  EXPECT_EQ(doc->text, "blk/012");
}

TEST(XmlReaderTest, NestingLimitIsSixtyFourLevels) {
  ASSERT_OK(ParseXml(Nested(64)));
  ExpectMalformed(Nested(65));
  // An empty-element tag one level too deep counts too.
  ASSERT_OK(ParseXml(Nested(63, "<b/>")));
  ExpectMalformed(Nested(64, "<b/>"));
  // Siblings do not add depth.
  std::string wide = "<r>";
  for (int i = 0; i < 10000; ++i) wide += "<c>x</c>";
  wide += "</r>";
  absl::StatusOr<XmlElement> root = ParseXml(wide);
  ASSERT_OK(root);
  EXPECT_EQ(root->children.size(), 10000u);
}

TEST(XmlReaderTest, CharacterReferencesMustNameAllowedCharacters) {
  absl::StatusOr<XmlElement> ok =
      ParseXml("<a>&#x41;&#X42;&#67;&#x10FFFF;&#xFFFD;&#9;&apos;&quot;</a>");
  ASSERT_OK(ok);
  EXPECT_EQ(ok->text, "ABC\xF4\x8F\xBF\xBF\xEF\xBF\xBD\t'\"");
  for (const char* bad : {"<a>&#xD800;</a>", "<a>&#xDFFF;</a>", "<a>&#55296;</a>",
                          "<a>&#x0;</a>", "<a>&#+65;</a>", "<a>&#-65;</a>", "<a>&# 65;</a>",
                          "<a>&#x 41;</a>", "<a>&#x0x41;</a>", "<a>&#;</a>", "<a>&#x;</a>",
                          "<a>&#1114112;</a>", "<a>&#99999999999999999999;</a>", "<a>&amp</a>",
                          "<a>& b</a>", "<a>&AMP;</a>", "<a>&lt</a><b>;</b>"}) {
    ExpectMalformed(bad);
  }
  // The same rules hold inside attribute values.
  ExpectMalformed("<a v='&#0;'/>");
  ExpectMalformed("<a v='&e;'/>");
}

TEST(XmlReaderTest, AttributesAreWellFormed) {
  absl::StatusOr<XmlElement> ok = ParseXml(
      "<Name Encoded=\"true\" xmlns:x='urn:x' gt='a>b' sp = \"1\"\n\tnl='2'>n</Name>");
  ASSERT_OK(ok);
  EXPECT_EQ(ok->Attribute("Encoded"), "true");
  EXPECT_EQ(ok->Attribute("xmlns:x"), "urn:x");
  EXPECT_EQ(ok->Attribute("gt"), "a>b");
  EXPECT_EQ(ok->Attribute("sp"), "1");
  EXPECT_EQ(ok->Attribute("nl"), "2");
  EXPECT_EQ(ok->Attribute("missing"), "");
  EXPECT_EQ(ok->text, "n");
  for (const char* bad : {"<a b='1' b='2'/>", "<a b='1'c='2'/>", "<a b='<'/>", "<a b='1/>",
                          "<a b/>", "<a b=/>", "<a b='1\"/>", "<a 1='x'/>", "<a b='1'"}) {
    ExpectMalformed(bad);
  }
}

TEST(XmlReaderTest, NamesAndEndTags) {
  absl::StatusOr<XmlElement> ok = ParseXml("<x:Root><_a.b-c1/><Content-Length>7</Content-Length >"
                                           "<x:Key>k</x:Key></x:Root>");
  ASSERT_OK(ok);
  EXPECT_EQ(ok->name, "Root");
  EXPECT_NE(ok->Child("_a.b-c1"), nullptr);
  EXPECT_EQ(ok->ChildText("Content-Length"), "7");
  EXPECT_EQ(ok->ChildText("Key"), "k");
  // The end tag repeats the start tag's name exactly, prefix included.
  for (const char* bad : {"<x:a></y:a>", "<x:a></a>", "<a></x:a>", "<1a/>", "<-a/>", "<.a/>",
                          "< a/>", "<a:/>", "<a></ a>", "<a></a b>", "<a/ >", "<>"}) {
    ExpectMalformed(bad);
  }
}

TEST(XmlReaderTest, OnlyXmlWhitespaceAroundTheRoot) {
  ASSERT_OK(ParseXml(" \t\r\n<a/> \t\r\n"));
  ExpectMalformed("\v<a/>");
  ExpectMalformed("<a/>\f");
  ExpectMalformed("<a/>x");
  ExpectMalformed("x<a/>");
  ExpectMalformed("<!-- unterminated <a/>");
  ExpectMalformed("<?xml version='1.0' <a/>");
}

TEST(XmlReaderTest, TextIsConcatenatedAndKeptAsSent) {
  absl::StatusOr<XmlElement> ok =
      ParseXml("<m>  one <b>x</b> two<!-- c --><![CDATA[ &three; ]]></m>");
  ASSERT_OK(ok);
  EXPECT_EQ(ok->text, "  one  two &three; ");
  EXPECT_EQ(ok->ChildText("b"), "x");
  // Children come back in document order, repeated names included.
  ok = ParseXml("<r><c>1</c><d/><c>2</c></r>");
  ASSERT_OK(ok);
  ASSERT_EQ(ok->children.size(), 3u);
  EXPECT_EQ(ok->children[1].name, "d");
  ASSERT_EQ(ok->Children("c").size(), 2u);
  EXPECT_EQ(ok->Children("c")[1]->text, "2");
  EXPECT_EQ(ok->ChildText("c"), "1");
}

TEST(XmlReaderTest, ErrorsNameTheByteOffset) {
  absl::StatusOr<XmlElement> r = ParseXml("<a><b></c></a>");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("malformed XML at byte 6:"));
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("</c>"));
}

TEST(XmlReaderTest, TruncationsOfAValidDocumentAreAllRejected) {
  const std::string doc =
      "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message a='1'>x &amp; y"
      "<![CDATA[z]]></Message><!-- c --></Error>";
  ASSERT_OK(ParseXml(doc));
  for (size_t n = 0; n < doc.size(); ++n) {
    EXPECT_FALSE(ParseXml(doc.substr(0, n)).ok()) << n;
  }
}

}  // namespace
}  // namespace nighfs::blockstore
